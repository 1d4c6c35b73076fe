"""Fine-tuning SAM 2 on annotated masklets: data, prompt simulation, losses, the loop.

`masklet train` (one process) and `torchrun ... -m masklet.train` (many) both run
`masklet.train.loop.train`. Importing this package imports no torch.
"""
