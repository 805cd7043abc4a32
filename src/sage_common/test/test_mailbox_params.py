"""The camera's default mailbox segment: one per ROS domain and namespace."""
from sage_common.mailbox_params import default_segment


def test_graphs_on_other_domains_or_namespaces_get_other_segments():
    names = {default_segment(d, ns) for d in (0, 7) for ns in ('/', '', '/r1', '/r2', '/r1/arm')}
    assert default_segment(7, '/') == default_segment(7, '') == 'sage_frames_7'
    assert default_segment(7, '/r1/arm') == 'sage_frames_7_r1_arm'
    assert len(names) == 8  # '/' and '' are the same root namespace
