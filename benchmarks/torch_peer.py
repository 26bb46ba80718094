"""The PyTorch peer of bench.py, in a process of its own.

Run by bench.py, not by hand.  It imports numpy and torch only, never the
wordnet package: importing wordnet sets how long OpenMP threads spin
(GOMP_SPINCOUNT) for the whole process, and wordnet's extensions load the
system's libgomp, which torch then shares (same soname).  torch ran about half
as fast with the engine's earlier setting (sleeping OpenMP threads), so a peer
measured in bench.py's own process could be handicapped by our engine's
choices; here it gets the environment that bench.py itself was started with.

Protocol: bench.py writes one command per line on stdin and reads one JSON
line per command on stdout:

    measure SECONDS        -> {"rate": updates per second}
    check UPDATES PATH     -> a fresh copy of the initial network runs UPDATES
                              updates from minibatch 0; its parameters (C
                              layout, float64) go to PATH (.npz);
                              {"ces": [batch CE of each update]}
    memory                 -> {"peak_rss_mib": ...}
    quit
"""
from __future__ import annotations

import argparse
import json
import resource
import sys

import numpy as np
from rates import run_for  # benchmarks/rates.py, beside this script


class TorchPeerNet:
    """A torch network on the minibatches ``x``, ``t`` (M x N ...), from wordnet's
    ``params``, trained by SGD with momentum; a subclass makes its modules (``build``),
    its loss on a minibatch (``loss``) and gives its parameters back (``params``).

    The mean cross-entropy's gradient is the C's batch-summed gradient times
    1/N, and torch's SGD momentum (buf = m·buf + g; θ −= lr·buf) is the C's
    update, so from the same weights both follow the same trajectory.
    """

    def __init__(self, params: dict, x: np.ndarray, t: np.ndarray, dtype,
                 learning_rate: float, momentum: float, sgd: str):
        import torch
        self.torch, self.F = torch, torch.nn.functional
        with torch.no_grad():
            modules = self.build(params, dtype)
        options = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[sgd]
        self.optimizer = torch.optim.SGD([p for m in modules for p in m.parameters()],
                                         lr=learning_rate, momentum=momentum, **options)
        self.x = torch.from_numpy(x.astype(np.int64))
        self.t = torch.from_numpy(t.astype(np.int64))      # (M, N)

    def step(self, b: int) -> float:
        loss = self.loss(self.x[b], self.t[b])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @staticmethod
    def numpy(p) -> np.ndarray:
        return p.detach().double().numpy().copy()

    def copy_in(self, weight, array: np.ndarray) -> None:
        weight.copy_(self.torch.from_numpy(np.ascontiguousarray(array)))


class TorchNet(TorchPeerNet):
    """nn.Embedding + Linear + sigmoid + Linear + cross-entropy: the 4-gram model;
    x is (M, N, D) contexts."""

    def build(self, params: dict, dtype) -> tuple:
        from torch import nn
        h1, V = params["W1"].shape
        h2, Dh1 = params["W2"].shape
        self.embedding = nn.Embedding(V, h1, dtype=dtype)
        self.hidden = nn.Linear(Dh1, h2, dtype=dtype)
        self.output = nn.Linear(h2, V, dtype=dtype)
        self.copy_in(self.embedding.weight, params["W1"].T)
        self.copy_in(self.hidden.weight, params["W2"])
        self.copy_in(self.hidden.bias, params["b2"])
        self.copy_in(self.output.weight, params["W3"])
        self.copy_in(self.output.bias, params["b3"])
        return self.embedding, self.hidden, self.output

    def loss(self, x, t):
        y1 = self.embedding(x).view(x.shape[0], -1)        # position-major, as W2's columns
        y2 = self.torch.sigmoid(self.hidden(y1))
        return self.F.cross_entropy(self.output(y2), t)

    def params(self) -> dict:
        get = self.numpy
        return {"W1": get(self.embedding.weight).T.copy(), "W2": get(self.hidden.weight),
                "b2": get(self.hidden.bias), "W3": get(self.output.weight),
                "b3": get(self.output.bias)}


class TorchSkipGram(TorchPeerNet):
    """Skip-gram with the full softmax: nn.Embedding (W1ᵀ) + Linear without bias (W2) +
    cross-entropy; x is (M, N) centre words, t their context words."""

    def build(self, params: dict, dtype) -> tuple:
        from torch import nn
        d, V = params["W1"].shape
        self.embedding = nn.Embedding(V, d, dtype=dtype)
        self.output = nn.Linear(d, V, bias=False, dtype=dtype)
        self.copy_in(self.embedding.weight, params["W1"].T)
        self.copy_in(self.output.weight, params["W2"])
        return self.embedding, self.output

    def loss(self, x, t):
        return self.F.cross_entropy(self.output(self.embedding(x)), t)

    def params(self) -> dict:
        get = self.numpy
        return {"W1": get(self.embedding.weight).T.copy(), "W2": get(self.output.weight)}


MODELS = {"4gram": (TorchNet, ("W1", "W2", "b2", "W3", "b3")),
          "skipgram": (TorchSkipGram, ("W1", "W2"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help=".npz: the parameters, x, t")
    ap.add_argument("--model", choices=tuple(MODELS), default="4gram")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--sgd", choices=("default", "foreach", "fused"), default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    net_class, names = MODELS[args.model]
    params = {k: data[k] for k in names}
    x, t = data["x"], data["t"]
    dtype = getattr(torch, args.dtype)

    def make():
        return net_class(params, x, t, dtype, args.learning_rate, args.momentum, args.sgd)

    net, b = make(), 0

    def step():
        nonlocal b
        net.step(b)
        b = b + 1 if b + 1 < len(x) else 0

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "measure":
            reply({"rate": run_for(step, float(rest[0]))})
        elif command == "check":
            fresh = make()
            ces = [fresh.step(i) for i in range(int(rest[0]))]
            np.savez(rest[1], **fresh.params())
            reply({"ces": ces})
        elif command == "memory":
            reply({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        elif command == "quit":
            break
        else:
            reply({"error": f"unknown command {command!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
