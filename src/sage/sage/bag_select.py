"""Which of a bag's topics `sage bag play` publishes (pure: no rclpy, no bag access).

By default only the graph's inputs are played (camera, audio, IMU, text, reward): a graph that
is running sees the recording as if its sensors produced it, and its own outputs (latents,
salience, budgets, states, memory) are never published twice. `--all` plays every topic,
`--topics` exactly the ones named, `--exclude` removes topics from either choice.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sage.bag_types import BagError
from sage_common.vocabulary import absolute, INPUT_TOPICS

# as recorded from a graph with no namespace
RECORDED_INPUTS = frozenset(absolute(t) for t in INPUT_TOPICS)

NOT_INPUT = 'not a sensor input (--all or --topics plays it)'
EXCLUDED = 'excluded (--exclude)'
NOT_NAMED = 'not named in --topics'


class Selection(NamedTuple):
    """Topics to play, and each skipped topic with the reason it is skipped."""

    play: tuple[str, ...]
    skip: dict[str, str]
    missing: tuple[str, ...]  # named in --topics or --exclude but not in the bag


def split_topics(values: Iterable[str]) -> list[str]:
    """Topic names from repeated and comma-separated options, with a leading '/' each."""
    names = [part.strip() for value in values for part in value.split(',')]
    return [n if n.startswith('/') else '/' + n for n in names if n]


def readers_wanted(values: Iterable[str]) -> dict[str, int]:
    """`--wait-for` values -> {topic: readers}: 'TOPIC' wants 1 reader, 'TOPIC=N' N.

    Raises:
        BagError: no topic name, or N is not a whole number of at least 1.
    """
    wanted: dict[str, int] = {}
    for item in split_topics(values):
        topic, _, count = item.partition('=')
        if topic == '/':
            raise BagError(f'--wait-for {item[1:]}: no topic name')
        try:
            n = int(count) if count else 1
        except ValueError:
            n = 0
        if n < 1:
            raise BagError(f'--wait-for {item}: the reader count must be a whole number >= 1')
        wanted[topic] = n
    return wanted


def select_topics(available: Sequence[str], topics: Sequence[str] = (),
                  exclude: Sequence[str] = (), play_all: bool = False) -> Selection:
    """Choose the topics to play from the ones a bag holds.

    Args:
        available: topic names in the bag.
        topics: play exactly these (default: the graph's input topics).
        exclude: never play these.
        play_all: play every topic in the bag (cannot be combined with topics).

    Returns:
        The topics to play in the bag's order, the skipped ones with their reasons, and the
        named topics the bag does not hold.

    Raises:
        BagError: topics and play_all are both given.
    """
    topics, exclude = split_topics(topics), split_topics(exclude)
    if topics and play_all:
        raise BagError('--topics and --all cannot be combined (--all plays every topic)')
    play: list[str] = []
    skip: dict[str, str] = {}
    for name in dict.fromkeys(available):
        if name in exclude:
            skip[name] = EXCLUDED
        elif topics and name not in topics:
            skip[name] = NOT_NAMED
        elif not topics and not play_all and name not in RECORDED_INPUTS:
            skip[name] = NOT_INPUT
        else:
            play.append(name)
    missing = tuple(n for n in dict.fromkeys(topics + exclude) if n not in available)
    return Selection(tuple(play), skip, missing)


def describe(selection: Selection) -> list[str]:
    """Lines for the console: what is played, what is skipped and why."""
    lines = [f"[bag] playing {len(selection.play)} topics: "
             f"{', '.join(selection.play) if selection.play else '(none)'}"]
    for reason in dict.fromkeys(selection.skip.values()):
        names = [t for t, r in selection.skip.items() if r == reason]
        lines.append(f"[bag] skipping {', '.join(names)}: {reason}")
    if selection.missing:
        lines.append(f"[bag] not in the bag: {', '.join(selection.missing)}")
    return lines
