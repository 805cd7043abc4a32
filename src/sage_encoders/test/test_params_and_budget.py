"""Parameter specs, cross-field rules, ATP accounting and metabolic gating."""
from __future__ import annotations

import pytest
from sage_common.errors import ParamError
from sage_common.params import resolve

from sage_encoders import audio_encoder_params, language_encoder_params, vision_encoder_params
from sage_encoders.budget import AtpAccount, should_suspend


@pytest.mark.parametrize('mod', [vision_encoder_params, audio_encoder_params,
                                 language_encoder_params])
def test_defaults_resolve_and_torch_runtime_needs_fp32(mod) -> None:
    values = resolve(mod.PARAMS, {}, mod.validate)
    assert values['runtime'] == 'onnx' and values['precision'] == 'fp32'
    with pytest.raises(ParamError, match='fp32'):
        resolve(mod.PARAMS, {'runtime': 'torch', 'precision': 'int8'}, mod.validate)


def test_vision_input_size_must_be_a_multiple_of_8() -> None:
    with pytest.raises(ParamError, match='multiple of 8'):
        resolve(vision_encoder_params.PARAMS, {'input_size': 230}, vision_encoder_params.validate)


def test_audio_hop_must_be_whole_audio_frames() -> None:
    mod = audio_encoder_params
    with pytest.raises(ParamError, match='multiple of 512'):
        resolve(mod.PARAMS, {'hop_samples': 1000}, mod.validate)
    with pytest.raises(ParamError, match='larger than window'):
        resolve(mod.PARAMS, {'hop_samples': 32768}, mod.validate)


def test_precision_choice_is_checked() -> None:
    with pytest.raises(ParamError, match='precision'):
        resolve(vision_encoder_params.PARAMS, {'precision': 'int4'})


def test_account_uses_our_allocation_and_spends_it() -> None:
    acc = AtpAccount('vision_encoder')
    assert acc.available() is None
    acc.on_budget(1, [('audio_encoder', 9.0), ('vision_encoder', 5.0)])
    assert acc.available() == 5.0
    acc.spend(3.0)
    acc.spend(3.0)
    assert acc.available() == 0.0 and acc.spent_tick == 6.0
    acc.on_budget(2, [('audio_encoder', 9.0)])
    assert acc.available() == 0.0 and acc.spent_tick == 0.0


def test_dream_crisis_and_red_memory_suspend_the_encoder() -> None:
    assert should_suspend('DREAM', 'green', 'DREAM,CRISIS', True)
    assert should_suspend('crisis', 'green', 'DREAM,CRISIS', True)
    assert should_suspend('WAKE', 'red', 'DREAM,CRISIS', True)
    assert not should_suspend('WAKE', 'red', 'DREAM,CRISIS', False)
    assert not should_suspend('FOCUS', 'yellow', 'DREAM,CRISIS', True)
