"""Build the core configs, and the parts they configure, from resolved parameter values."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine

from sage_memory.index.structure import IndexConfig
from sage_memory.memory import MemoryConfig
from sage_memory.memory_params import default_session, split_list
from sage_memory.policy import PolicyConfig
from sage_memory.sleep.consolidation import SleepConfig
from sage_memory.store.memory_store import StoreConfig, default_device_id
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.retention import RetentionConfig
from sage_memory.sync.outbox import KEY_PREFIX, Outbox, OutboxWorker
from sage_memory.sync.shared_models import Adopter


def device_and_session(values: Mapping[str, Any]) -> tuple[str, str]:
    """Device id and session from parameters (defaults: host name, device + start time)."""
    device = str(values.get('device_id') or default_device_id())[:64]
    session = str(values.get('session') or default_session(device))[:64]
    return device, session


def memory_config(values: Mapping[str, Any]) -> MemoryConfig:
    """MemoryConfig from memory node parameters."""
    device, session = device_and_session(values)
    store = StoreConfig(
        database_url=str(values['database_url']), data_dir=str(values['data_dir']),
        device_id=device, batch_max=int(values['writer.batch_max']),
        linger_s=float(values['writer.linger_s']),
        max_pending=int(values['writer.max_pending']),
        backoff_max_s=float(values['writer.backoff_max_s']),
        synchronous=str(values['sqlite_synchronous']),
        wal_max_mb=float(values['sqlite_wal_max_mb']), retention=retention_config(values),
        page_size=int(values['sqlite_page_size']),
        training_budget_mb=float(values['training_inputs.budget_mb']))
    index = IndexConfig(kind=str(values['index.kind']),
                        exact_work=int(values['index.exact_work']),
                        nprobe=int(values['index.nprobe']), seed=int(values['index.seed']),
                        m=int(values['index.m']),
                        ef_construction=int(values['index.ef_construction']),
                        ef_search=int(values['index.ef_search']),
                        threads=int(values['index.threads']),
                        snapshot_vectors=bool(values['index.snapshot_vectors']),
                        add_chunk=int(values['index.add_chunk']))
    sleep = SleepConfig(similarity=float(values['sleep.similarity']),
                        min_cluster=int(values['sleep.min_cluster']),
                        max_examined=int(values['sleep.max_examined']))
    return MemoryConfig(store=store, index=index, sleep=sleep, session=session,
                        snapshot_period_s=float(values['index.snapshot_period_s']),
                        refresh_period_s=float(values['index.refresh_period_s']),
                        heap_trim_rows=int(values['heap_trim_rows']),
                        ready_wait_s=float(values['index.ready_wait_s']))


def retention_config(values: Mapping[str, Any]) -> RetentionConfig:
    """RetentionConfig from parameters."""
    return RetentionConfig(max_rows=int(values['max_rows']),
                           low_water=float(values['retention.low_water']),
                           recency_weight=float(values['retention.recency_weight']),
                           recency_scale_s=float(values['retention.recency_scale_s']),
                           period_s=float(values['retention.period_s']))


def policy_config(values: Mapping[str, Any]) -> PolicyConfig:
    """PolicyConfig from parameters (device and session as memory_config picks them)."""
    device, session = device_and_session(values)
    return PolicyConfig(
        device_id=device, session=session, mode=str(values['policy.mode']),
        min_salience=float(values['policy.min_salience']),
        modalities=frozenset(split_list(values['policy.modalities'])),
        states=frozenset(split_list(values['policy.states'])),
        context_before=int(values['context_before']),
        context_after=int(values['context_after']),
        full_fidelity_top_fraction=float(values['full_fidelity_top_fraction']),
        fidelity_window=int(values['fidelity_window']),
        summary_keep_preview=bool(values['summary_keep_preview']),
        feature_digits=int(values['feature_digits']),
        pair_buffer=int(values['pair_buffer']), pair_timeout_s=float(values['pair_timeout_s']),
        tags=tuple(split_list(values['tags'])))


def outbox_worker(values: Mapping[str, Any], engine: Engine, versions_dir: str,
                  on_patterns: Callable[[list[ExperienceRecord]], None]
                  ) -> OutboxWorker | None:
    """The edge's outbox to the shared store (outbox.*; None when outbox.url is empty), with
    the adopter of the encoder versions other hosts promoted (outbox.adopt_models).

    Args:
        values: the memory node's parameters, device_id resolved.
        engine: this host's database.
        versions_dir: folder of the encoder model versions.
        on_patterns: hears the pattern rows taken back from the shared store.
    """
    if not values['outbox.url']:
        return None
    outbox = Outbox(engine, str(values['outbox.url']), int(values['outbox.batch']),
                    device_id=str(values['device_id']),
                    link_timeout_s=float(values['outbox.link_timeout_s']),
                    settle_s=float(values['outbox.settle_s']))
    modalities = [m for m in str(values['sleep.retrain.modalities']).split(',') if m]
    adopter = (Adopter(engine, versions_dir, modalities, str(values['device_id']),
                       outbox.key[len(KEY_PREFIX):])
               if values['outbox.adopt_models'] else None)
    return OutboxWorker(outbox, float(values['outbox.period_s']),
                        inputs=bool(values['outbox.inputs']),
                        patterns=bool(values['outbox.patterns']), on_patterns=on_patterns,
                        adopter=adopter)
