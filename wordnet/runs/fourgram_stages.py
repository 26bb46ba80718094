"""The 4-gram model's stages in a run: train (the fused loop, resumable), validate, test
and reproduce (the checks against the C reference).

Its checkpoint is the C program's ``model.bin``, with ``model.bin.state.npz`` beside it
while a training can be resumed; its validation curve is drawn as the CE plot, and the
trained model is logged as MLflow's pyfunc model, which predicts next words.
"""
from __future__ import annotations

import dataclasses

from wordnet import plots
from wordnet.errors import ConfigError
from wordnet.models import checkpoint, ngram
from wordnet.models.base import check_memory
from wordnet.models.fourgram import Model, training_memory
from wordnet.runs import ownership, publish
from wordnet.runs.reproduce import engine_figures, reproduce, waived_up_front
from wordnet.runs.rundir import (
    CE_PLOT,
    CHECKPOINT,
    HISTORY,
    REPORT,
    REPORT_JSON,
    check_space,
    space_needed,
)
from wordnet.runs.stages import Ahead, PipelineError, Reporter, stop_on_signals
from wordnet.training.trainer import Diverged, Position, Trainer, evaluate


class FourGramStages:
    """The stages of ``run`` (a PipelineRun) for a 4-gram model."""

    def __init__(self, run):
        self.run, self.config = run, run.config
        self._model = None
        self._evaluated = {}                        # split -> Metrics of this run's model
        self._ahead = Ahead({})                     # evaluations started before their stage

    def train(self):
        run, cfg, data = self.run, self.config, self.run.dataset
        total = cfg.iterations(len(data.train))
        check_space(run.out, space_needed(self._header(), total))
        check_memory(training_memory(self._header()))
        model, trainer, before = self._trainer()
        report = Reporter(run, trainer, total, points=len(before["valid_ce"]))

        def on_checkpoint(so_far):
            try:
                self._save_resumable(model, trainer, before, so_far)
            except OSError as e:                    # a full disk: the last save stays
                run.echo(f"warning: no periodic checkpoint ({e}); training goes on")

        try:
            with stop_on_signals(trainer.request_stop) as signals:
                history = trainer.run(data.train, data.valid, report.on_iteration,
                                      report.on_validation, on_checkpoint)
        except (Diverged, ConfigError) as e:        # a failed run, as a failed check is;
            raise PipelineError(str(e)) from e      # a sweep goes on with the next one
        finally:
            report.close()
        if history.stopped and report.pruned:
            self._save_resumable(model, trainer, before, history)  # the partial curve too
            report.raise_pruned()
        if history.stopped:
            try:
                self._save_resumable(model, trainer, before, history)
            except OSError as e:                    # still an interruption: 130, or 143
                run.echo(f"stopped at iteration {trainer.position.step}, but not saved ({e})")
                raise signals.interruption() from None
            run.tracked.set_tags({"wordnet.stopped_at_iteration": trainer.position.step})
            run.echo(f"stopped at iteration {trainer.position.step}: the model and what "
                     f"resuming needs are in {run.out}/; `wordnet-pipeline run --resume "
                     f"--out {run.out}` continues")
            raise signals.interruption()            # SIGTERM: Terminated, exit status 143
        history.train_ce[:0], history.valid_ce[:0] = before["train_ce"], before["valid_ce"]
        self._model, self._evaluated = model, {}   # those of an earlier model are stale
        self._save_model(model)                     # a periodic save stays until this is done
        checkpoint.state_path(run.out / CHECKPOINT).unlink(missing_ok=True)
        run.folder.write_json(HISTORY, {"train_ce": history.train_ce,
                                        "valid_ce": history.valid_ce})
        if "validate" not in run.planned:           # else drawn once, with the final CE
            run.painter.draw(plots.ce_curves, run.out / CE_PLOT, history.train_ce,
                             history.valid_ce, len(data.train) // cfg.batch_size,
                             title=run.plot_title())
        run.trained(model.W1, history)
        self._evaluate_ahead(model)                 # while MLflow takes the model
        publish.log_model(run)

    def _evaluate_ahead(self, model: Model) -> None:
        """The evaluations this command's later stages report, started on a thread: they
        hold no GIL, and logging the model to MLflow, which comes first, is seconds of
        Python (reading back the run's curves, writing the model).  The stages take
        them in turn and report them as they would have."""
        planned, data, size = self.run.planned, self.run.dataset, self.config.batch_size
        jobs = {}
        if "validate" in planned:
            jobs["valid"] = lambda: evaluate(model, data.valid, size)
        if "test" in planned or "reproduce" in planned:
            jobs["test"] = lambda: evaluate(model, data.test, size)
        if "reproduce" in planned and data.has_course_vocabulary():
            jobs["engine"] = lambda: engine_figures(data)
        self._ahead = Ahead(jobs)

    def validate(self):
        self._evaluate("valid")
        self._redraw_ce_curves()

    def test(self):
        self._evaluate("test")
        self._baseline()

    def reproduce(self):
        run = self.run
        if not run.dataset.has_course_vocabulary():     # the C reference's models: 250 words
            run.echo(f"reproduce: nothing to compare: the C reference's models know the "
                     f"course's 250 words, and this data ({run.dataset.describe()}) has a "
                     f"vocabulary of its own ({len(run.dataset.vocab):,} words)")
            return
        said = waived_up_front(run.recipe, len(run.dataset.train))
        if said:
            run.echo(said)
        ours = (self._evaluated.get("test") or self._ahead.take("test")
                or evaluate(self.model, run.dataset.test, self.config.batch_size))
        report = reproduce(run.out / CHECKPOINT, self.model, run.recipe, run.dataset, ours,
                           self._ahead.take("engine"))
        report.write(run.out)
        run.tracked.log_artifacts(run.out / REPORT, run.out / REPORT_JSON)
        run.record(report.metrics())
        run.tracked.tag_model({"wordnet.reproduce": "passed" if not report.failed else
                               f"failed: {'; '.join(c.name for c in report.failed)}"})
        for line in report.lines():
            run.echo(line)
        if report.failed:
            raise PipelineError(f"{len(report.failed)} reproduction check(s) failed: "
                                f"{'; '.join(c.name for c in report.failed)} "
                                f"(see {run.out / REPORT})")
        run.echo(f"reproduce: {report.verdict()}")

    # -- helpers --------------------------------------------------------------------------

    def training_examples(self) -> int:
        return len(self.run.dataset.train)

    def examples_in(self, split: str) -> int:
        return len(self.run.dataset.split(split))

    @property
    def model(self) -> Model:
        """The model this run trained, else the folder's."""
        if self._model is None:
            run = self.run
            if not (run.out / CHECKPOINT).is_file():
                raise PipelineError(f"no 4-gram model in {run.out}/: run --stage train "
                                    "first, or pass --out DIR or --from-run RUN_ID")
            _, params = run.folder.load_model(len(run.dataset.vocab))
            self._model = Model.restore(params, self.config, run.threads)
            run.echo(f"model: {run.out / CHECKPOINT}")
        return self._model

    def _trainer(self):
        """(model, trainer, history so far): fresh, or where an interrupted run stopped."""
        run, cfg = self.run, self.config
        if not run.resume:
            model = Model.initialize(cfg, len(run.dataset.vocab), threads=run.threads)
            if cfg.init_embeddings:
                model.W1[...] = run.embeddings_of(cfg.init_embeddings, model)
            return model, Trainer(model, cfg), {"train_ce": [], "valid_ce": []}
        path = run.out / CHECKPOINT
        header, params = run.folder.load_model(len(run.dataset.vocab))
        velocity, saved, before = checkpoint.load_state(path, header.shapes())
        try:
            position = Position.restore(saved, cfg, len(run.dataset.train) // cfg.batch_size)
            if len(before.get("train_ce", ())) != position.step or "valid_ce" not in before:
                raise ValueError(f"its history does not end at iteration {position.step}")
        except ValueError as e:
            raise checkpoint.CheckpointError(f"{checkpoint.state_path(path)}: cannot resume "
                                             f"this recipe's run from it: {e}") from None
        model = Model.restore(params, cfg, run.threads)
        trainer = Trainer(model, cfg, velocity, position)
        run.echo(f"resuming at iteration {trainer.position.step + 1} from {path}")
        # what the interrupted command had not sent to its MLflow run, which this continues
        ownership.complete_curves(run, before, len(run.dataset.train) // cfg.batch_size)
        return model, trainer, before

    def _evaluate(self, split: str):
        run = self.run
        m = (self._ahead.take(split)
             or evaluate(self.model, run.dataset.split(split), self.config.batch_size))
        self._evaluated[split] = m
        run.echo(f"{split}: CE {m.ce:.8f}, perplexity {m.perplexity:.4f}, top-1 "
                 f"{m.top1:.2%}, top-5 {m.top5:.2%} ({m.examples:,} examples)")
        run.record_evaluation(split, m.as_dict(), dataset=run.dataset_link(split))

    def _baseline(self):
        """The classical model on the same split (interpolated Kneser–Ney, orders 1-4,
        from the training 4-grams: wordnet.models.ngram): whether the network beats it."""
        run, data = self.run, self.run.dataset
        figures = ngram.baseline(data.train, data.test, len(data.vocab))
        run.echo(f"baseline: interpolated Kneser-Ney, test CE {figures['test_ce']:.8f}, "
                 f"perplexity {figures['test_perplexity']:.4f}")
        run.record({f"baseline/{name}": value for name, value in figures.items()},
                   dataset=run.dataset_link("test"))

    def _redraw_ce_curves(self):
        """The CE plot again, with the final model's validation CE (the train stage
        draws it before there is one)."""
        run = self.run
        history = run.folder.read_json(HISTORY)
        if not history:
            return                                  # a model trained elsewhere: no curves
        run.painter.draw(plots.ce_curves, run.out / CE_PLOT, history["train_ce"],
                         [tuple(point) for point in history["valid_ce"]],
                         len(run.dataset.train) // self.config.batch_size,
                         title=run.plot_title(),
                         final_valid_ce=run.metrics["valid/final_ce"])

    def _header(self) -> checkpoint.Header:
        data = self.run.dataset
        return checkpoint.Header.for_run(self.config, len(data.vocab),
                                         (len(data.train), len(data.valid), len(data.test)))

    def _save_resumable(self, model: Model, trainer: Trainer, before: dict, history):
        """The model, the history, then the state that resuming needs (naming the
        model it belongs to): a kill at any point leaves a pair --resume accepts or
        refuses, never a wrong one."""
        so_far = {"train_ce": before["train_ce"] + history.train_ce,
                  "valid_ce": before["valid_ce"] + [list(v) for v in history.valid_ce]}
        self._save_model(model)
        self.run.folder.write_json(HISTORY, so_far)
        checkpoint.save_state(self.run.out / CHECKPOINT, trainer.velocity,
                              dataclasses.asdict(trainer.position), so_far)

    def _save_model(self, model: Model):
        run = self.run
        run.folder.save_model(self._header(), model.params(), run.dataset.vocab.words,
                              run.recipe)
        run.wrote_model = True
