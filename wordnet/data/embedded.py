"""The copy of the published data and of the C reference's checkpoint that ships with
the package, so that nothing needs a network.

``_embedded/`` holds, xz-compressed, the course's files as upstream
(``gingerbig/wordnet``) publishes them and ``c_full.bin``, the checkpoint the C
program writes after the full reference recipe (SPEC section 5).  Every file is
checked against the SHA-256 pinned here each time it is read; so are the three
splits rebuilt from ``raw_sentences.txt`` (SPLIT_SHA256, see
:meth:`wordnet.data.dataset.Dataset.digest`).  The pins of the published CSV files
(CSV_SHA256) tie those splits to upstream's files: the tests render the rebuilt
splits as CSV and compare.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import lzma

from wordnet.errors import WordNetError

FOLDER = "_embedded"

# file -> SHA-256 of its uncompressed bytes
SHA256 = {
    "raw_sentences.txt": "68f938bf5e07dd2a93ba94b8fe6e885d0e9c47bdd9288e4240392b01a516252f",
    "vocab.txt": "963df394e8a2b435da8d25595fdafcf6145095477ca22c7458475cafac5ae077",
    "vocab_ordered.txt": "2f6095a83d957ac40ed9e0ad3cd01d3007e4c758115721af9512c021fd1d397a",
    "model9-3000.bin": "b954d6fc2c0ceb9e0ac0b83c0f22838e648541b965d4ddfdbb5b2d6536a3bec3",
    "c_full.bin": "81b2d0b58e50122682ac20a386501fe03aea88e9bfa0760698f6111cd0a6d689",
}

# The split files: valid and test as upstream publishes them, train as SPEC
# section 2 rebuilds it (upstream does not publish it).
CSV_SHA256 = {
    "train_data.csv": "5f8816ab8fbdbf0e8cde1900f65a4d360b6bb2e631438792092045da3d4375d8",
    "valid_data.csv": "55df54636164cd170ee234463471d3c7e9a0f83342ca6bf19fc7b6f6d7a7482e",
    "test_data.csv": "842a555d72dac89e14c98d28968a084748c0e26b4a5c7c33d7f1fef040dfbe70",
}

# split -> SHA-256 of its rows as 0-based little-endian int32 (Dataset.digest):
# the same rows as the CSV files above, cheaper to check than to render as text.
SPLIT_SHA256 = {
    "train": "2191e78715f2cd8d68b9fc195613fb2a96d4141761a3bc8d36ab6b6daa6c0865",
    "valid": "dfa4a8c6128f7ef04aab7076b94aef36ce87f64da3908b2dd415b7765e3583ce",
    "test": "015e16b5305785317f1e3f7f56bbd570d02a23d3d2da527d56af6a5e91c9a64e",
}

PUBLISHED_MODEL = "model9-3000.bin"     # the upstream author's checkpoint (SPEC section 6)
C_FULL = "c_full.bin"                   # the C program's, after the reference recipe


class EmbeddedError(WordNetError):
    """The package's copy of a file is missing or damaged."""


def location() -> str:
    """Where the copy lies, for messages and MLflow's dataset sources."""
    return str(importlib.resources.files("wordnet") / FOLDER)


def read_bytes(name: str) -> bytes:
    """The file ``name`` of the embedded copy, decompressed and checked."""
    if name not in SHA256:
        raise EmbeddedError(f"{name}: not one of the files shipped with the package "
                            f"({', '.join(SHA256)})")
    resource = importlib.resources.files("wordnet") / FOLDER / f"{name}.xz"
    try:
        blob = lzma.decompress(resource.read_bytes())
    except (OSError, lzma.LZMAError) as e:
        raise EmbeddedError(f"{resource}: unreadable ({e}); reinstall the package") from None
    check(name, hashlib.sha256(blob).hexdigest())
    return blob


def check(name: str, digest: str, pins: dict[str, str] = SHA256) -> None:
    """EmbeddedError unless ``digest`` is the SHA-256 pinned for ``name``."""
    if digest != pins[name]:
        raise EmbeddedError(f"the package's copy of {name} has SHA-256 {digest[:12]}…, not the "
                            f"pinned {pins[name][:12]}…: it is damaged; reinstall the package")
