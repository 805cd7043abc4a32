"""Every `sage bench` benchmark and its rigs.

Not runtime: bring-up and the nodes never import it."""
