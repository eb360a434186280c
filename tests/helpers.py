"""Helpers the tests share (fixtures are in conftest.py)."""


def snapshot(model):
    """Every parameter, copied to the CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters()}


def block_of(model):
    return {id(p): name for name, b in model.blocks().items() for p in b.parameters()}


def assert_freeze_guarantees(model, before, optimizer):
    """Frozen parameters are bit-identical to `before` and not held by the optimizer (nor in
    its state); every trainable parameter got a gradient, and moved if it was not zero."""
    import torch
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        now = p.detach().cpu()
        if not p.requires_grad:
            assert torch.equal(now, before[name]), f"frozen {name} moved"
            assert id(p) not in held and p not in optimizer.state, f"frozen {name} is in the optimizer"
        else:
            assert p.grad is not None, f"trainable {name} got no gradient"
            if p.grad.abs().sum() > 0:
                assert not torch.equal(now, before[name]), f"trainable {name} did not move"
