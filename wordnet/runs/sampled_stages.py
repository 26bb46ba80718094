"""The stages train, validate, test and reproduce of the window scorer and of skip-gram
(``model = "window"`` or ``"skipgram"``), for :class:`wordnet.runs.pipeline.PipelineRun`.

They write the 4-gram stages' files but the CE plot and the reproduction report;
the checkpoint is ``model.npz`` (:func:`wordnet.models.checkpoint.save_npz`), and the figures
are each kind's own (its ``KIND.figures``):

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
from wordnet.models.checkpoint import load_npz
from wordnet.runs.rundir import HISTORY, NPZ_CHECKPOINT, check_space
from wordnet.runs.stages import PipelineError, Reporter, stop_on_signals
from wordnet.training.sampled import SampledTrainer, examples
from wordnet.training.trainer import Diverged


class SampledStages:
    """The stages of ``run`` (a PipelineRun) for a model trained on sampled windows or
    pairs of the sentences (its kind's model class makes them: ``examples``)."""

    def __init__(self, run):
        self.run, self.config, self.kind = run, run.config, run.kind
        self.cls = self.kind.model
        self._corpus, self._model = None, None

    @property
    def corpus(self):
        if self._corpus is None:
            run = self.run
            self._corpus = load_corpus(run.dataset.vocab, run.data_dir)
            if "raw_sentences.txt" not in run.dataset.files and not run.dataset.manifest:
                # the 4-gram CSVs were read
                run.tracked.set_tags({"wordnet.data.sha256.raw_sentences.txt":
                                      sha256(run.data_dir / "raw_sentences.txt")})
        return self._corpus

    def examples(self, split: str):
        """The split's examples; PipelineError when it has none."""
        rows = examples(self.cls, self.corpus, split, self.config)
        if len(rows) == 0:
            raise PipelineError(f"the {split} split of the sentences has no "
                                f"{self.kind.examples} (k = {self.config.window}): choose a "
                                "smaller window")
        return rows

    def training_examples(self) -> int:
        return len(self.examples("train"))

    def examples_in(self, split: str) -> int:
        return len(examples(self.cls, self.corpus, split, self.config))

    def _new_model(self):
        cfg = self.config
        model = self.cls.initialize(cfg, len(self.run.dataset.vocab), self.run.threads)
        if cfg.init_embeddings:
            model.W1[...] = self.run.embeddings_of(cfg.init_embeddings, model)
        return model

    @property
    def model(self):
        """The model this run trained, else the folder's model.npz, as the recipe's
        backend computes it."""
        if self._model is None:
            path = self.run.out / NPZ_CHECKPOINT
            if not path.exists():              # not a file there: load_npz says so
                raise PipelineError(f"no {self.config.model} model in {self.run.out}/: run "
                                    "--stage train first, or pass --out DIR")
            _, params = load_npz(path, {self.kind.name: self.cls.PARAMS},
                                 len(self.run.dataset.vocab))
            self.run.echo(f"model: {path}")
            self._model = self.cls.restore(params, self.config, self.run.threads)
        return self._model

    # -- stages ---------------------------------------------------------------------------

    def train(self):
        run, cfg = self.run, self.config
        if run.resume:
            raise PipelineError(f"a {cfg.model} run does not resume: train it again, "
                                "without --resume")
        train, valid = self.examples("train"), self.examples("valid")
        run.echo(f"{cfg.model}: {len(train):,} training and {len(valid):,} validation "
                 f"{self.kind.examples} (k = {cfg.window})")
        model = self._new_model()
        params = sum(p.size for p in model.params().values())
        check_memory(8 * 4 * params + 8 * len(train) * train.shape[1])
        check_space(run.out, 2 * 8 * params + 64 * cfg.iterations(len(train)) + 2**22)
        trainer = SampledTrainer(model, cfg, self.corpus)
        report = Reporter(run, trainer, cfg.iterations(len(train)))
        try:
            with stop_on_signals(trainer.request_stop) as signals:
                history = trainer.run(train, valid, report.on_iteration, report.on_validation)
        except (Diverged, ConfigError) as e:
            raise PipelineError(str(e)) from e
        finally:
            report.close()
        if history.stopped:
            report.raise_pruned()
            run.echo(f"stopped at iteration {len(history.train_ce)}: these models do not "
                     "resume; nothing was saved")
            raise signals.interruption()            # SIGTERM: Terminated, exit status 143
        self._model = model
        run.folder.save_npz_model(model.kind, model.params(), run.dataset.vocab.words,
                                  run.recipe)
        run.wrote_model = True
        run.folder.write_json(HISTORY, {"train_ce": history.train_ce,
                                        "valid_ce": history.valid_ce})
        run.trained(model.W1, history)

    def validate(self):
        self._evaluate("valid")

    def test(self):
        self._evaluate("test")

    def reproduce(self):
        self.run.echo(f"reproduce: nothing to compare: the C reference trains only the "
                      f"4-gram model, not a {self.config.model} model")

    def _evaluate(self, split: str):
        rows = self.examples(split)
        with self.model.single_threaded_blas():
            figures = self.model.evaluate(rows)
        self.run.echo(f"{split}: " + ", ".join(f"{name.replace('_', ' ')} {value:.6f}"
                                               for name, value in figures.items())
                      + f" ({len(rows):,} {self.kind.examples})")
        self.run.record_evaluation(split, figures)
