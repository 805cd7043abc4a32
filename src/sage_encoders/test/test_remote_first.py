"""Remote first, local fallback: who encodes a text when another host's encoder may answer."""
from sage_encoders.remote_first import RemoteFirst


def test_a_text_the_remote_answers_in_time_is_not_encoded_here():
    rf = RemoteFirst(deadline_s=0.5)
    assert rf.offer(1, 'a', now=0.0) == []
    rf.answered(1)
    assert rf.due(now=10.0) == []
    assert rf.counts == {'remote_answered': 1, 'local_fallbacks': 0, 'remote_late': 0}


def test_an_unanswered_text_is_encoded_here_at_its_deadline_and_a_late_answer_is_counted():
    rf = RemoteFirst(deadline_s=0.5)
    rf.offer(1, 'a', now=0.0)
    rf.offer(2, 'b', now=0.3)
    assert rf.due(now=0.49) == []
    assert rf.due(now=0.5) == ['a']       # in order, each at its own deadline
    assert rf.due(now=0.8) == ['b']
    rf.answered(1)
    assert rf.counts == {'remote_answered': 0, 'local_fallbacks': 2, 'remote_late': 1}


def test_an_answer_that_overtakes_its_text_is_not_encoded_again():
    rf = RemoteFirst(deadline_s=0.5)
    rf.answered(7)
    assert rf.offer(7, 'a', now=0.0) == [] and rf.due(now=5.0) == []
    assert rf.counts['remote_answered'] == 1


def test_a_silent_remote_loses_trust_then_is_probed_and_regains_it():
    rf = RemoteFirst(deadline_s=0.5, trust_rate=0.5, min_trust=0.2, probe_every=3)
    t = 0.0
    for key in range(3):                 # the link is down: every text times out
        rf.offer(key, key, now=t)
        t += 1.0
        assert rf.due(now=t) == [key]
    assert rf.trust < 0.2
    # Untrusted: texts are encoded at once, except every 3rd, which still waits (a probe).
    waited = [key for key in range(3, 9) if rf.offer(key, key, now=t) == []]
    assert waited == [5, 8]
    for key in waited:                   # the remote is back and answers the probes
        rf.answered(key)
    assert rf.trust > 0.2
    assert rf.offer(9, 9, now=t) == []   # trusted again: texts wait for it
