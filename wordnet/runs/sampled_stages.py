"""The stages train, validate, test and reproduce of the window scorer and of skip-gram
(``model = "window"`` or ``"skipgram"``), for :class:`wordnet.runs.pipeline.PipelineRun`.

They write the 4-gram stages' files but the CE plot and the reproduction report;
the checkpoint is ``model.npz`` (:func:`wordnet.models.checkpoint.save_npz`), and the figures
are each model's own (:mod:`wordnet.models.figures`):

    window      train/loss_running_mean, valid/loss (hinge, against fixed corruptions);
                {valid,test}/ranking_accuracy, /mean_margin, /loss
    skipgram    train/loss_running_mean (the sampled loss with negatives > 0),
                valid/ce (full softmax); {valid,test}/log_likelihood, /ce, /perplexity

The run's MLflow artifacts are the checkpoint, its vocabulary, its recipe and
history, and the embedding map; MLflow's logged model, a pyfunc that predicts next
words, is the 4-gram model's only.
"""
from __future__ import annotations

from wordnet.data.corpus import load_corpus
from wordnet.data.dataset import sha256
from wordnet.errors import ConfigError
from wordnet.models.base import check_memory
from wordnet.models.figures import FIGURES
from wordnet.models.skipgram import SkipGram
from wordnet.models.window import WindowScorer
from wordnet.runs.rundir import HISTORY, NPZ_CHECKPOINT, check_space
from wordnet.training.sampled import SampledTrainer, examples
from wordnet.training.trainer import Diverged

MODELS = {"window": WindowScorer, "skipgram": SkipGram}


class SampledStages:
    """The stages of ``run`` (a PipelineRun) for a window scorer or a skip-gram model."""

    def __init__(self, run):
        self.run, self.config = run, run.config
        self.cls = MODELS[self.config.model]
        self._corpus = None

    @property
    def corpus(self):
        if self._corpus is None:
            run = self.run
            self._corpus = load_corpus(run.dataset.vocab, run.data_dir)
            if "raw_sentences.txt" not in run.dataset.files:   # the 4-gram CSVs were read
                run.tracked.set_tags({"wordnet.data.sha256.raw_sentences.txt":
                                      sha256(run.data_dir / "raw_sentences.txt")})
        return self._corpus

    def examples(self, split: str):
        """The split's windows or centre-context pairs; PipelineError when it has none."""
        from wordnet.runs.pipeline import PipelineError
        rows = examples(self.cls, self.corpus, split, self.config.window)
        if len(rows) == 0:
            k = self.config.window
            what = (f"windows of {2 * k + 1} words" if self.cls is WindowScorer
                    else "two words in one sentence")
            raise PipelineError(f"the {split} split of raw_sentences.txt has no {what} "
                                f"(k = {k}): choose a smaller window")
        return rows

    def _new_model(self):
        cfg = self.config
        model = self.cls.initialize(cfg, len(self.run.dataset.vocab))
        if cfg.init_embeddings:
            model.W1[...] = self.run._embeddings_of(cfg.init_embeddings, model)
        return model

    def load_model(self):
        """The folder's model.npz, as the recipe's backend computes it."""
        from wordnet.models.checkpoint import load_npz
        from wordnet.runs.pipeline import PipelineError
        path = self.run.out / NPZ_CHECKPOINT
        if not path.is_file():
            raise PipelineError(f"no {self.config.model} model in {self.run.out}/: run "
                                "--stage train first, or pass --out DIR")
        _, params = load_npz(path, {self.cls.kind: self.cls.PARAMS})
        extra = {"activation": self.config.activation} if self.cls is WindowScorer else {}
        self.run.echo(f"model: {path}")
        return self.cls(params, self.config.backend, dtype=self.config.dtype, **extra)

    # -- stages ---------------------------------------------------------------------------

    def train(self):
        from wordnet.runs.pipeline import PipelineError, stop_on_signals
        run, cfg = self.run, self.config
        if run.resume:
            raise PipelineError(f"a {cfg.model} run does not resume: train it again, "
                                "without --resume")
        train, valid = self.examples("train"), self.examples("valid")
        run.echo(f"{cfg.model}: {len(train):,} training and {len(valid):,} validation "
                 f"{'windows' if cfg.model == 'window' else 'centre-context pairs'} "
                 f"(k = {cfg.window})")
        model = self._new_model()
        params = sum(p.size for p in model.params().values())
        check_memory(8 * 4 * params + 8 * len(train) * train.shape[1])
        check_space(run.out, 2 * 8 * params + 64 * cfg.iterations(len(train)) + 2**22)
        trainer = SampledTrainer(model, cfg, self.corpus)
        total = cfg.iterations(len(train))
        bar = run.progress(total, loss="loss") if run.progress else None
        train_name, valid_name = FIGURES[cfg.model].train_curve, FIGURES[cfg.model].valid_curve
        points, pruned = [], []                     # validation steps; where the judge stopped it

        def on_iteration(it):
            run.tracked.log_metric(train_name, it.train_ce, it.step)
            if it.batch == 1:
                run.tracked.log_metric("train/epoch", it.epoch, it.step)
            if bar:
                bar.update(it)

        def on_validation(step, value):
            run.tracked.log_metric(valid_name, value, step)
            points.append(step)
            if run.judge is not None and run.judge(len(points), value):
                pruned.append((step, value))
                trainer.request_stop()

        try:
            with stop_on_signals(trainer.request_stop):
                history = trainer.run(train, valid, on_iteration, on_validation)
        except (Diverged, ConfigError) as e:
            raise PipelineError(str(e)) from e
        finally:
            if bar:
                bar.close()
        if history.stopped:
            if pruned:
                from wordnet.runs.pipeline import Pruned
                step, value = pruned[0]
                why = (f"validation point {len(points)} (iteration {step}): "
                       f"{valid_name} {value:.4f}, clearly worse than other trials there")
                run.tracked.set_tags({"wordnet.pruned": why})
                raise Pruned(f"pruned at {why}")
            run.echo(f"stopped at iteration {len(history.train_ce)}: these models do not "
                     "resume; nothing was saved")
            raise KeyboardInterrupt
        run._model, run.step = model, len(history.train_ce)
        run.metrics, run._evaluated = {}, {}
        run.folder.save_npz_model(model.kind, model.params(), run.dataset.vocab.words,
                                  run.recipe)
        run.wrote_model = True
        run.folder.write_json(HISTORY, {"train_ce": history.train_ce,
                                        "valid_ce": history.valid_ce})
        run.trained(model.W1, history, NPZ_CHECKPOINT, "loss")

    def validate(self):
        self._evaluate("valid")

    def test(self):
        self._evaluate("test")

    def reproduce(self):
        self.run.echo(f"reproduce: nothing to compare: the C reference trains only the "
                      f"4-gram model, not a {self.config.model} model")

    def _evaluate(self, split: str):
        run = self.run
        if run._model is None:
            run._model = self.load_model()
        rows = self.examples(split)
        with run._model.single_threaded_blas():
            figures = run._model.evaluate(rows)
        run.echo(f"{split}: " + ", ".join(f"{name.replace('_', ' ')} {value:.6f}"
                                          for name, value in figures.items())
                 + f" ({len(rows):,} {'windows' if self.config.model == 'window' else 'pairs'})")
        figures = {f"{split}/{name}": value for name, value in figures.items()}
        names = FIGURES[self.config.model]
        curve = names.valid_curve
        if split == "valid":                # the curve of the validations ends with this one
            figures[names.select_by] = value = figures.pop(curve)
            if run.step:
                run.tracked.log_metric(curve, value, run.step)
        run._record(figures)
