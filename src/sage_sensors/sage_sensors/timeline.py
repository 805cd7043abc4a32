"""The one event schedule of the synthetic scene, shared by camera, microphone and IMU.

Scene time is `(stamp - origin_s) mod period_s`. With the default origin 0.0 every process
derives the same phase from its own capture stamps (stamps are Unix-epoch seconds), so three
separately started sensor nodes agree without talking to each other, and tests or SNARC scenario
tools can label any stamp from the same numbers:

    >>> tl = Timeline()
    >>> [(o.event.name, o.stamp) for o in tl.occurrences(0.0, 20.0)]
    [('object_appears', 6.0), ('clap', 9.0), ('phrase', 12.0), ('shake', 15.0)]

`python -m sage_sensors.timeline --start T0 --end T1` prints the labelled event times as JSON.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass
import json
import math
import sys
from typing import Any

from sage_common.params import ParamSpec

#: What espeak-ng says at the 'phrase' event (baked into the sample data at install time).
PHRASE = 'Hello SAGE, a cup of coffee appeared.'


@dataclass(frozen=True)
class Event:
    """One scripted event of the scene, at an offset inside every period."""

    name: str
    modality: str
    offset_s: float
    duration_s: float
    label: str


@dataclass(frozen=True)
class Occurrence:
    """One event at an absolute stamp (seconds, same clock as the sensor stamps)."""

    stamp: float
    event: Event

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form: stamp plus the event fields."""
        return {'stamp': self.stamp, **asdict(self.event)}


@dataclass(frozen=True)
class Timeline:
    """Event times of the looping scene (all in seconds).

    Attributes:
        period_s: the scene loops every period_s seconds.
        object_s: a coffee cup appears in the camera view.
        object_duration_s: how long the cup stays visible.
        clap_s: a loud clap in the microphone.
        phrase_s: espeak-ng says PHRASE.
        phrase_duration_s: nominal length of the phrase (the clip itself may be shorter).
        shake_s: the IMU is shaken.
        shake_duration_s: how long the shake lasts.
        origin_s: stamp at which scene time is 0 (0.0 aligns the scene to the epoch).
    """

    period_s: float = 20.0
    object_s: float = 6.0
    object_duration_s: float = 4.0
    clap_s: float = 9.0
    phrase_s: float = 12.0
    phrase_duration_s: float = 3.0
    shake_s: float = 15.0
    shake_duration_s: float = 1.5
    origin_s: float = 0.0

    def events(self) -> tuple[Event, ...]:
        """The scripted events of one period, in time order."""
        evs = (
            Event('object_appears', 'vision', self.object_s, self.object_duration_s,
                  'a coffee cup appears on the table'),
            Event('clap', 'audio', self.clap_s, 0.15, 'a loud clap'),
            Event('phrase', 'audio', self.phrase_s, self.phrase_duration_s, PHRASE),
            Event('shake', 'imu', self.shake_s, self.shake_duration_s, 'the robot is shaken'),
        )
        return tuple(sorted(evs, key=lambda e: e.offset_s))

    def event(self, name: str) -> Event:
        """The event called name.

        Raises:
            KeyError: no such event.
        """
        for ev in self.events():
            if ev.name == name:
                return ev
        raise KeyError(name)

    def phase(self, t: float) -> float:
        """Scene time in [0, period_s) of stamp t."""
        return (t - self.origin_s) % self.period_s

    def active(self, name: str, t: float) -> float | None:
        """Seconds since event name started if it is under way at stamp t, else None."""
        ev = self.event(name)
        since = (self.phase(t) - ev.offset_s) % self.period_s
        return since if since < ev.duration_s else None

    def occurrences(self, start: float, end: float) -> list[Occurrence]:
        """Every event starting in [start, end), with absolute stamps, in time order."""
        out: list[Occurrence] = []
        if end <= start:
            return out
        first = math.floor((start - self.origin_s) / self.period_s)
        last = math.floor((end - self.origin_s) / self.period_s)
        for k in range(first, last + 1):
            base = self.origin_s + k * self.period_s
            for ev in self.events():
                t = base + ev.offset_s
                if start <= t < end:
                    out.append(Occurrence(t, ev))
        return out

    def problems(self) -> list[str]:
        """Why this schedule is unusable (events outside the period or overlapping the end)."""
        errors = []
        for ev in self.events():
            name = _PARAM_OF.get(ev.name, ev.name)
            if not 0.0 <= ev.offset_s < self.period_s:
                errors.append(f"parameter '{name}': {ev.offset_s} is not inside "
                              f"[0, scene.period_s={self.period_s})")
            elif ev.offset_s + ev.duration_s > self.period_s:
                errors.append(f"parameter '{name}': event '{ev.name}' ({ev.duration_s} s) "
                              f'runs past scene.period_s={self.period_s}')
        return errors

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (parameters and the events of one period)."""
        return {**asdict(self), 'events': [asdict(e) for e in self.events()]}


_PARAM_OF = {'object_appears': 'scene.object_s', 'clap': 'scene.clap_s',
             'phrase': 'scene.phrase_s', 'shake': 'scene.shake_s'}

#: Parameters every sensor node declares, so the three agree (use the same values for all).
TIMELINE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('scene.period_s', 20.0, 'synthetic scene loops every this many seconds',
              min_value=5.0, max_value=3600.0, read_only=True),
    ParamSpec('scene.object_s', 6.0, 'scene time at which a cup appears (camera)',
              min_value=0.0, max_value=3600.0, read_only=True),
    ParamSpec('scene.clap_s', 9.0, 'scene time of a loud clap (microphone)',
              min_value=0.0, max_value=3600.0, read_only=True),
    ParamSpec('scene.phrase_s', 12.0, 'scene time of the spoken phrase (microphone)',
              min_value=0.0, max_value=3600.0, read_only=True),
    ParamSpec('scene.shake_s', 15.0, 'scene time of a shake (IMU)',
              min_value=0.0, max_value=3600.0, read_only=True),
    ParamSpec('scene.origin_s', 0.0, 'stamp where scene time is 0 (0 = aligned to the epoch, '
              'so separate processes agree)', read_only=True),
)


def timeline_from_params(values: Mapping[str, Any]) -> Timeline:
    """Build the Timeline from parameter values (missing names keep their defaults)."""
    d = Timeline()
    return Timeline(
        period_s=float(values.get('scene.period_s', d.period_s)),
        object_s=float(values.get('scene.object_s', d.object_s)),
        clap_s=float(values.get('scene.clap_s', d.clap_s)),
        phrase_s=float(values.get('scene.phrase_s', d.phrase_s)),
        shake_s=float(values.get('scene.shake_s', d.shake_s)),
        origin_s=float(values.get('scene.origin_s', d.origin_s)))


def main(argv: list[str] | None = None) -> int:
    """Print the labelled events between --start and --end (stamps) as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--start', type=float, default=0.0)
    parser.add_argument('--end', type=float, default=None, help='default: start + one period')
    parser.add_argument('--period', type=float, default=Timeline.period_s)
    args = parser.parse_args(argv)
    tl = Timeline(period_s=args.period)
    problems = tl.problems()
    if problems:
        print('ERROR: ' + '; '.join(problems), file=sys.stderr)
        return 2
    end = args.end if args.end is not None else args.start + tl.period_s
    json.dump({'timeline': tl.as_dict(),
               'occurrences': [o.as_dict() for o in tl.occurrences(args.start, end)]},
              sys.stdout, indent=1)
    print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
