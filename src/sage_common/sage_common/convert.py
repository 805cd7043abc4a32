"""Conversions between sage_common.records and ROS messages (used by node shells only)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sage_interfaces.msg import Latent, Salience
from sensor_msgs.msg import Imu

from sage_common.records import grids, ImuRecord, LatentRecord, SalienceRecord
from sage_common.stamps import to_sec, to_sec_nsec

if TYPE_CHECKING:  # annotation only: std_msgs comes at run time with sensor_msgs
    from std_msgs.msg import Header


def set_stamp(header: Header, t: float) -> None:
    """Write float seconds into a std_msgs/Header stamp."""
    header.stamp.sec, header.stamp.nanosec = to_sec_nsec(t)


def latent_to_msg(rec: LatentRecord, frame_id: str = '') -> Latent:
    msg = Latent()
    set_stamp(msg.header, rec.stamp)
    msg.header.frame_id = frame_id
    msg.modality = rec.modality
    msg.input_seq = int(rec.input_seq)
    if rec.codes is not None:
        msg.grid_height, msg.grid_width = (int(d) for d in rec.codes.shape)
        msg.codes = np.ascontiguousarray(rec.codes, dtype=np.uint16).ravel().tolist()
    if rec.codes_initial is not None:
        msg.codes_initial = np.ascontiguousarray(rec.codes_initial,
                                                 dtype=np.uint16).ravel().tolist()
    msg.codebook_size = int(rec.codebook_size)
    msg.embedding = np.asarray(rec.embedding, dtype=np.float32).tolist()
    msg.feature_names = list(rec.features.keys())
    msg.features = [float(v) for v in rec.features.values()]
    msg.recon_error = float(rec.recon_error)
    msg.iterations = int(rec.iterations)
    msg.energy_initial = float(rec.energy_initial)
    msg.energy_final = float(rec.energy_final)
    msg.converged = bool(rec.converged)
    msg.halt_reason = rec.halt_reason
    msg.atp_spent = float(rec.atp_spent)
    msg.encode_ms = float(rec.encode_ms)
    msg.preview_format = rec.preview_format
    msg.preview = bytes(rec.preview)
    msg.text = rec.text
    msg.model_version = rec.model_version
    return msg


def latent_from_msg(msg: Latent) -> LatentRecord:
    codes, initial = grids(msg)
    return LatentRecord(
        stamp=to_sec(msg.header.stamp), modality=msg.modality, input_seq=int(msg.input_seq),
        codes=codes, codebook_size=int(msg.codebook_size),
        embedding=np.asarray(msg.embedding, dtype=np.float32),
        features=dict(zip(msg.feature_names, (float(v) for v in msg.features))),
        recon_error=float(msg.recon_error), iterations=int(msg.iterations),
        energy_initial=float(msg.energy_initial), energy_final=float(msg.energy_final),
        converged=bool(msg.converged), halt_reason=msg.halt_reason,
        atp_spent=float(msg.atp_spent), encode_ms=float(msg.encode_ms),
        preview_format=msg.preview_format, preview=bytes(msg.preview), text=msg.text,
        codes_initial=initial, model_version=msg.model_version)


def salience_to_msg(rec: SalienceRecord, frame_id: str = '') -> Salience:
    msg = Salience()
    set_stamp(msg.header, rec.stamp)
    msg.header.frame_id = frame_id
    msg.modality = rec.modality
    msg.input_seq = int(rec.input_seq)
    for name in ('surprise', 'novelty', 'arousal', 'reward', 'conflict', 'salience',
                 'threshold'):
        setattr(msg, name, float(getattr(rec, name)))
    msg.attend = bool(rec.attend)
    return msg


def salience_from_msg(msg: Salience) -> SalienceRecord:
    return SalienceRecord(
        stamp=to_sec(msg.header.stamp), modality=msg.modality, input_seq=int(msg.input_seq),
        surprise=msg.surprise, novelty=msg.novelty, arousal=msg.arousal, reward=msg.reward,
        conflict=msg.conflict, salience=msg.salience, threshold=msg.threshold,
        attend=bool(msg.attend))


def imu_from_msg(msg: Imu, seq: int) -> ImuRecord:
    a, w, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
    orientation = None
    if msg.orientation_covariance[0] != -1.0:
        orientation = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    return ImuRecord(stamp=to_sec(msg.header.stamp), input_seq=seq,
                     accel=np.array([a.x, a.y, a.z], dtype=np.float64),
                     gyro=np.array([w.x, w.y, w.z], dtype=np.float64),
                     orientation=orientation)
