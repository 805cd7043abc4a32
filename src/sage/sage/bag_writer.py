"""rosbag2 folders in one or several storage files, zstd-compressed by default (no rclpy).

Compression is the one `ros2 bag` tools read without being told: MCAP files hold zstd chunks
(MCAP's own chunk compression, what rosbag2's MCAP plugin writes with its zstd presets, so
metadata.yaml keeps compression_mode empty and every MCAP reader decompresses); sqlite3 files
hold zstd messages (rosbag2's `--compression-mode message --compression-format zstd`, named in
metadata.yaml).

Splitting follows rosbag2's max_bagfile_size: files `<bag>_0.mcap`, `<bag>_1.mcap`, ... in the
bag folder, listed in order in metadata.yaml (relative_file_paths and files), each starting a
new file once the current one holds max_bytes. The check follows a write, as rosbag2's does,
so a file may pass the limit by up to one MCAP chunk (1 MiB before compression).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcap.exceptions import McapError
from mcap.reader import make_reader
import yaml

from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys.store import Typestore

from sage.bag_types import BagError

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
COMPRESSIONS = ('zstd', 'none')
DEFAULT_COMPRESSION = 'zstd'
# zstd inside the storage where the storage has it (MCAP chunks), else per message (sqlite3).
_ZSTD_MODE = {'mcap': CompressionMode.STORAGE, 'sqlite3': CompressionMode.MESSAGE}
# rosbag2 metadata version 8 keeps offered_qos_profiles as a YAML string, which Humble's
# rosbag2 (Orin Nano) still parses; Jazzy and Kilted read it too.
BAG_VERSION: Literal[8] = 8
PARTS_DIR = '.parts'  # files being written; each moves into the bag folder once closed
# Payload written between two looks at the file size (a stat per message would be wasted).
SIZE_CHECK_BYTES = 256 * 1024
METADATA = 'metadata.yaml'


@dataclass(frozen=True)
class BagOptions:
    """How a bag is written: storage plugin, compression, largest file (0 = one file)."""

    storage: str = 'mcap'
    compression: str = DEFAULT_COMPRESSION
    max_bytes: int = 0

    def check(self) -> None:
        """Raise BagError naming the first unusable option."""
        if self.storage not in STORAGES:
            raise BagError(f"unknown storage '{self.storage}' (known: {', '.join(STORAGES)})")
        if self.compression not in COMPRESSIONS:
            raise BagError(f"unknown compression '{self.compression}' "
                           f"(known: {', '.join(COMPRESSIONS)})")
        if self.max_bytes < 0:
            raise BagError(f'max size must be positive (or 0 for one file), '
                           f'got {self.max_bytes} bytes')


@dataclass
class _Topic:
    name: str
    msgtype: str
    offered: list[Qos]


@dataclass
class BagWriter:
    """Writes a rosbag2 folder through rosbags' Writer, one Writer per storage file.

    Usage: open(), add_topic() once per topic (also after messages were written), write(),
    close(). close() writes metadata.yaml listing every file; without it the folder has no
    metadata.yaml (as after a crash of `ros2 bag record`), but closed files are complete.
    """

    out: Path
    typestore: Typestore
    options: BagOptions = field(default_factory=BagOptions)
    files: list[str] = field(default_factory=list)
    _topics: dict[str, _Topic] = field(default_factory=dict)
    _parts: list[dict[str, Any]] = field(default_factory=list)
    _writer: Writer | None = None
    _part_dir: Path | None = None
    _conns: dict[str, Connection] = field(default_factory=dict)
    _unchecked: int = 0
    _roll: bool = False

    def open(self) -> None:
        """Create the bag folder and its first file.

        Raises:
            BagError: bad options, or the folder exists or cannot be created.
        """
        self.options.check()
        try:
            self.out.mkdir(parents=True)
        except FileExistsError:
            raise BagError(f'{self.out} exists already, not overwriting') from None
        except OSError as err:
            raise BagError(f'cannot create {self.out}: {err}') from err
        self._start_file()

    def add_topic(self, topic: str, msgtype: str, offered: Sequence[Qos]) -> None:
        """Register a topic (its type must be in the typestore); later files get it too."""
        self._topics[topic] = _Topic(topic, msgtype, list(offered))
        self._connect(self._topics[topic])

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Append one serialized (CDR) message to the current file."""
        if self._roll:
            self._finish_file()
            self._start_file()
        writer = self._open_writer()
        writer.write(self._conns[topic], timestamp_ns, data)
        self._unchecked += len(data)
        if self.options.max_bytes and self._unchecked >= SIZE_CHECK_BYTES:
            self._unchecked = 0
            self._roll = self._file_bytes() >= self.options.max_bytes

    def close(self) -> None:
        """Close the current file and write metadata.yaml for all of them."""
        if self._writer is None:
            return
        self._finish_file()
        parts_root = self.out / PARTS_DIR
        if parts_root.is_dir() and not any(parts_root.iterdir()):
            parts_root.rmdir()
        tmp = self.out / f'{METADATA}.tmp'
        tmp.write_text(yaml.safe_dump({'rosbag2_bagfile_information':
                                       merged_metadata(self._parts, self.files)},
                                      sort_keys=False))
        tmp.replace(self.out / METADATA)

    # -- one storage file ----------------------------------------------------------------

    def _open_writer(self) -> Writer:
        if self._writer is None:
            raise BagError(f'{self.out} is not open for writing')
        return self._writer

    def _start_file(self) -> None:
        name = f'{self.out.name}_{len(self._parts)}'
        self._part_dir = self.out / PARTS_DIR / name
        writer = Writer(self._part_dir, version=BAG_VERSION,
                        storage_plugin=STORAGES[self.options.storage])
        if self.options.compression == 'zstd':
            writer.set_compression(_ZSTD_MODE[self.options.storage], CompressionFormat.ZSTD)
        try:
            writer.open()
        except WriterError as err:
            raise BagError(str(err)) from err
        self._writer, self._conns, self._roll, self._unchecked = writer, {}, False, 0
        for topic in self._topics.values():
            self._connect(topic)

    def _connect(self, topic: _Topic) -> None:
        self._conns[topic.name] = self._open_writer().add_connection(
            topic.name, topic.msgtype, typestore=self.typestore, serialization_format='cdr',
            offered_qos_profiles=topic.offered)

    def _file_bytes(self) -> int:
        folder = self._part_dir
        return sum(f.stat().st_size for f in folder.iterdir()) if folder else 0

    def _finish_file(self) -> None:
        writer, folder = self._open_writer(), self._part_dir
        assert folder is not None  # set together with the writer
        writer.close()
        self._writer = None
        meta = yaml.safe_load((folder / METADATA).read_text())['rosbag2_bagfile_information']
        (storage_file,) = meta['relative_file_paths']
        (folder / storage_file).replace(self.out / storage_file)
        (folder / METADATA).unlink()
        folder.rmdir()
        self.files.append(storage_file)
        self._parts.append(meta)


def merged_metadata(parts: list[dict[str, Any]], files: list[str]) -> dict[str, Any]:
    """rosbag2_bagfile_information of a bag made of the files whose own metadata is parts.

    Per-file entries keep their own times and counts; the bag's start, duration and per-topic
    counts span all of them (topics registered after the first file included).
    """
    first = parts[0]
    spans = [(p['starting_time']['nanoseconds_since_epoch'], p['duration']['nanoseconds'])
             for p in parts if p['message_count']]
    start = min((s for s, _ in spans), default=first['starting_time']['nanoseconds_since_epoch'])
    end = max((s + d for s, d in spans), default=start)
    topics: dict[tuple[str, str], dict[str, Any]] = {}
    for part in parts:
        for entry in part['topics_with_message_count']:
            meta = entry['topic_metadata']
            key = (meta['name'], meta['type'])
            if key in topics:
                topics[key]['message_count'] += entry['message_count']
            else:
                topics[key] = {'topic_metadata': dict(meta),
                               'message_count': entry['message_count']}
    return {
        **first,
        'relative_file_paths': list(files),
        'duration': {'nanoseconds': end - start},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': sum(p['message_count'] for p in parts),
        'topics_with_message_count': list(topics.values()),
        'files': [f for p in parts for f in p['files']],
    }


def compression_of(bag: Path, meta: dict[str, Any]) -> str:
    """How a bag's messages are compressed: 'zstd (mcap chunks)', 'zstd (message)', 'none'.

    rosbag2 names file and message compression in metadata.yaml; MCAP chunk compression is
    only in the files, so their chunk indexes are read (summary section only, no messages).
    """
    fmt, mode = meta.get('compression_format') or '', meta.get('compression_mode') or ''
    if fmt and mode and mode.lower() != 'none':
        return f'{fmt} ({mode.lower()})'
    if meta.get('storage_identifier') != 'mcap':
        return 'none'
    kinds: set[str] = set()
    for name in meta.get('relative_file_paths', []):
        try:
            with (bag / Path(name).name).open('rb') as f:
                summary = make_reader(f).get_summary()
        except (OSError, McapError) as err:
            raise BagError(f'cannot read {bag / name}: {err}') from err
        if summary is not None:
            kinds.update(c.compression for c in summary.chunk_indexes)
    named = sorted(k for k in kinds if k)
    return f"{'+'.join(named)} (mcap chunks)" if named else 'none'
