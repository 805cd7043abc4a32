"""SAGE evaluation tooling: real recorded media, labelled scenes and salience benchmarks."""
