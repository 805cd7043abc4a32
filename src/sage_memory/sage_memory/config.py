"""Build the core configs from resolved parameter values (pure)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sage_memory.sleep.consolidation import SleepConfig
from sage_memory.index.structure import IndexConfig
from sage_memory.memory import MemoryConfig
from sage_memory.memory_params import default_session, split_list
from sage_memory.policy import PolicyConfig
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import StoreConfig, default_device_id


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
