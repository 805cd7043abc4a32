"""Per-modality scoring: only an input of the event's own modality detects it."""
from __future__ import annotations

import pytest

from sage_eval.salience_score import AXIS_LEVEL, score_scene, summarise
from sage_eval.scenario import AUDIO_WINDOW_S, Event, ScenarioLabels, score_decisions

T0 = 1000.0


def _labels():
    events = [Event('self_effect', 'vision', T0 + 30.0, T0 + 30.1, 'camera_rate:15->5',
                    target=False),
              Event('clap', 'audio', T0 + 50.0, T0 + 50.2, 'impact:punch'),
              Event('object_appears', 'vision', T0 + 70.0, T0 + 70.5, 'object:clock')]
    calm = [(T0 + 5.0, T0 + 29.5), (T0 + 33.0, T0 + 49.5), (T0 + 53.0, T0 + 69.5),
            (T0 + 73.0, T0 + 100.0)]
    return ScenarioLabels(seed=0, program='test', duration_s=100.0, start=T0, warmup_s=5.0,
                          events=events, calm=calm)


def _decisions(attend):
    """Quiet vision (10 Hz) and audio (every 0.256 s) inputs; attend maps (modality, t) to
    axis values of an attended input (t: when it is placed: the stamp, audio its window end)."""
    out = []
    for modality, step in (('vision', 0.1), ('audio', 0.256)):
        for i in range(int(99.0 / step)):
            stamp = T0 + i * step
            out.append({'stamp': stamp, 'modality': modality, 'surprise': 0.1, 'novelty': 0.1,
                        'arousal': 0.1, 'reward': 0.0, 'conflict': 0.0, 'salience': 0.1,
                        'attend': False, 'stored': False})
    for (modality, t), axes in attend.items():
        stamp = T0 + t - (AUDIO_WINDOW_S if modality == 'audio' else 0.0)
        out.append({'stamp': stamp, 'modality': modality, 'surprise': 0.0, 'novelty': 0.0,
                    'arousal': 0.0, 'reward': 0.0, 'conflict': 0.0, 'salience': 0.8,
                    'attend': True, 'stored': True, **axes})
    return sorted(out, key=lambda d: d['stamp'])


def test_an_attended_input_of_another_modality_does_not_detect_an_event():
    labels = _labels()
    # The clap attends audio; the object only gets an attended AUDIO input in its window.
    decisions = _decisions({('audio', 50.2): {'arousal': 0.9},
                            ('audio', 70.3): {'arousal': 0.9}})
    report = score_scene(decisions, labels)
    assert report['by_kind']['clap/audio']['recall'] == 1.0
    assert report['by_kind']['object_appears/vision']['recall'] == 0.0
    # The old any-modality rule counted it: the reason this scorer exists.
    assert score_decisions(decisions, labels)['recall_by_kind']['object_appears'] == 1.0
    decisions = _decisions({('audio', 50.2): {'arousal': 0.9},
                            ('vision', 70.3): {'novelty': 0.9}})
    report = score_scene(decisions, labels)
    assert report['by_kind']['object_appears/vision']['recall'] == 1.0
    assert report['by_kind']['object_appears/vision']['latency_s'] == pytest.approx(0.3)


def test_the_axis_that_should_catch_a_kind_is_checked_at_the_detection():
    labels = _labels()
    report = score_scene(_decisions({('audio', 50.2): {'surprise': 0.95},
                                     ('vision', 70.2): {'novelty': AXIS_LEVEL + 0.1,
                                                        'surprise': 0.2}}), labels)
    rows = {r['kind']: r for r in report['events']}
    assert rows['clap']['detected'] and not rows['clap']['axis_fired']
    assert rows['clap']['fired'] == ['surprise']
    assert rows['object_appears']['axis_fired'] and rows['object_appears']['fired'] == ['novelty']
    assert report['by_kind']['clap/audio']['axis_recall'] == 0.0


def test_false_alarms_are_counted_per_modality_and_self_effects_apart():
    labels = _labels()
    report = score_scene(_decisions({
        ('vision', 40.0): {}, ('vision', 40.5): {},  # one run: one alarm
        ('vision', 80.0): {},  # another
        ('audio', 90.0): {},
        ('vision', 31.0): {},  # within 3 s of the camera step: the robot's own effect
    }), labels)
    calm_min = sum(b - a for a, b in labels.calm) / 60.0
    assert report['false_alarms'] == {'audio': 1, 'vision': 2}
    assert report['false_alarms_per_min']['vision'] == pytest.approx(2 / calm_min)
    assert report['self_effect_attends'] == 1
    assert report['self_effects'][0]['modality'] == 'vision'
    summary = summarise([report, score_scene(_decisions({}), labels)])
    assert summary['by_kind']['clap/audio']['recall'] == {'mean': 0.0, 'worst': 0.0, 'n': 2}
    assert summary['false_alarms_per_min']['vision']['worst'] == pytest.approx(2 / calm_min)
    assert summary['self_effect_attends'] == {'mean': 0.5, 'worst': 1.0, 'n': 2}
