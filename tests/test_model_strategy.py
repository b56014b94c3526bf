"""parse_strategy: a table of valid and invalid strings."""
import dataclasses

import pytest

from facelm.errors import ConfigError
from facelm.model import Strategy, UpBlock, parse_strategy


@pytest.mark.parametrize("text, kinds, upscale", [
    ("S", ("S",), 2),
    ("D", ("D",), 2),
    ("SDD", ("S", "D", "D"), 8),
    ("DDDD", ("D", "D", "D", "D"), 16),
    ("SDSD", ("S", "D", "S", "D"), 16),
    ("SSSSSS", ("S",) * 6, 64),
])
def test_valid(text, kinds, upscale):
    s = parse_strategy(text)
    assert isinstance(s, Strategy)
    assert s.text == text
    assert tuple(b.kind for b in s.blocks) == kinds
    assert tuple(b.position for b in s.blocks) == tuple(range(len(text)))
    assert s.upscale == upscale
    assert s.num_pixel_shuffle == kinds.count("S") and s.num_deconv == kinds.count("D")


def test_result_is_frozen_plain_data():
    s = parse_strategy("SD")
    assert s == Strategy("SD", (UpBlock("S", 0), UpBlock("D", 1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.text = "DD"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.blocks[0].kind = "D"  # type: ignore[misc]


@pytest.mark.parametrize("text, char, pos", [
    ("SDX", "'X'", 2),
    ("sdd", "'s'", 0),
    ("SdD", "'d'", 1),
    (" SDD", "' '", 0),
    ("SD D", "' '", 2),
    ("SDD\n", "'\\n'", 3),
    ("S-D", "'-'", 1),
    ("DDDD4", "'4'", 4),
])
def test_bad_character_names_char_and_position(text, char, pos):
    with pytest.raises(ConfigError) as exc:
        parse_strategy(text)
    msg = str(exc.value)
    assert f"bad character {char} at position {pos}" in msg
    assert repr(text) in msg


def test_lowercase_gets_a_hint():
    with pytest.raises(ConfigError, match=r"did you mean 'S'"):
        parse_strategy("s")


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("SSSSSSS", "at most 6"),
    (None, "must be a string"),
    (3, "must be a string"),
])
def test_bad_length_or_type(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_strategy(text)
