"""What the example policy (``policies/examples/``) needs to run, shipped inside the package so
that an installed orchd has it too. Outside the layers: nothing of orchd imports it."""
