"""Process set-up: the allocator, XLA compile options, multi-host start and a description of the machine."""
