"""The upsampling-strategy mini-language of the paper: a string over ``S`` and ``D``.

A strategy is read left to right, starting at the backbone:

* ``S`` — 3x3 conv to F channels + BN + ReLU + PixelShuffle(2) (F/4 channels leave it);
* ``D`` — ConvTranspose(k=4, s=2, p=1) to F channels + BN + ReLU.

Every block doubles the spatial size. Parsing is kept apart from building (as in
timm's architecture strings): :func:`parse_strategy` returns plain frozen data and
:mod:`facelm.model.heads` turns it into modules.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from facelm.errors import ConfigError

BlockKind = Literal["S", "D"]

#: The characters a strategy may contain and what they mean.
BLOCK_KINDS: dict[str, str] = {
    "S": "conv3x3 + BN + ReLU + PixelShuffle(2)",
    "D": "ConvTranspose(k4, s2, p1) + BN + ReLU",
}
#: Longest strategy accepted: 2^6 = 64x upsampling, already past any input size used here.
MAX_BLOCKS = 6


@dataclass(frozen=True)
class UpBlock:
    """One upsampling block: its kind (``"S"`` or ``"D"``) and 0-based position from the backbone."""

    kind: BlockKind
    position: int


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy: the original text and its blocks in order (backbone first)."""

    text: str
    blocks: tuple[UpBlock, ...]

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def upscale(self) -> int:
        """Total spatial upsampling factor of the head (2 per block)."""
        return 2 ** len(self.blocks)

    @property
    def num_pixel_shuffle(self) -> int:
        return sum(b.kind == "S" for b in self.blocks)

    @property
    def num_deconv(self) -> int:
        return sum(b.kind == "D" for b in self.blocks)


def parse_strategy(text: str) -> Strategy:
    """Parse a strategy string such as ``"SDD"`` into a :class:`Strategy`.

    Only upper-case ``S`` and ``D`` are accepted, 1 to :data:`MAX_BLOCKS` of them.
    Raises :class:`ConfigError` naming the first bad character and its 0-based
    position, or saying why the length is wrong.
    """
    if not isinstance(text, str):
        raise ConfigError(f"strategy must be a string of 'S'/'D', got {type(text).__name__}")
    if not text:
        raise ConfigError("strategy is empty: give 1 to %d blocks of 'S' or 'D', e.g. 'SDD'" % MAX_BLOCKS)
    for pos, ch in enumerate(text):
        if ch not in BLOCK_KINDS:
            hint = f" (did you mean {ch.upper()!r}?)" if ch.upper() in BLOCK_KINDS else ""
            raise ConfigError(
                f"bad character {ch!r} at position {pos} of strategy {text!r}: "
                f"only 'S' (pixel shuffle) and 'D' (deconvolution) are allowed{hint}"
            )
    if len(text) > MAX_BLOCKS:
        raise ConfigError(f"strategy {text!r} has {len(text)} blocks; at most {MAX_BLOCKS} are allowed")
    return Strategy(text=text, blocks=tuple(UpBlock(kind=ch, position=i) for i, ch in enumerate(text)))  # type: ignore[arg-type]
