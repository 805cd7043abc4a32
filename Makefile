# The two commands of the README. Both install what they need first (idempotent).
DURATION ?= 60
PROFILE ?= nano

.PHONY: run test install image results
run:
	@bash scripts/install.sh
	@.venv/bin/sage launch $(PROFILE) --duration $(DURATION)

test:
	@bash scripts/test.sh

install:
	@bash scripts/install.sh

# The x86 image with podman from a debootstrapped Debian base (no Docker engine needed).
image:
	@bash scripts/image.sh

# docs/results/: one page per benchmark JSON in docs/results/data/ (docs/benchmarks.md).
results:
	@.venv/bin/python scripts/results.py
