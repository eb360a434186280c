"""LoRA on the shared encoder, through Hugging Face peft (Hu et al. 2022).

    add_lora(model, rank=8)                      # query and value of every layer
    add_lora(model, rank=4, layers=[4, 5])       # only the top two layers: the bottom stays cacheable
    merge_lora(model)                            # fold B @ A into the weights: same predictions, no extra cost

A LoRA layer keeps the pretrained weight W frozen and learns a low-rank update: the layer
computes W x + (alpha / rank) * B A x, with A (rank x d_in) and B (d_out x rank), B starting
at zero so that training starts from the pretrained model. Only A and B (and the heads)
train: a few tenths of a percent of the parameters. peft's inject_adapter_in_model puts
the adapters into the encoder in place, so the model keeps its named blocks: a layer with
adapters is a *partly* trainable block, like a layer under BitFit.
"""
from .common import MTLError

TARGETS = ("query", "value")


def add_lora(model, rank=8, layers=None, targets=TARGETS, alpha=None, dropout=0.1):
    """Inject LoRA adapters into the model's encoder; freeze every other encoder weight.
    alpha defaults to 2 x rank (a constant scale alpha / rank = 2 across ranks)."""
    from peft import LoraConfig, inject_adapter_in_model
    n = len(model.layers)
    if not isinstance(rank, int) or rank < 1:
        raise MTLError(f"LoRA rank must be a positive integer, not {rank!r}")
    layers = sorted(set(layers)) if layers else None
    if layers and not all(0 <= i < n for i in layers):
        raise MTLError(f"LoRA layers {layers} are out of range: the encoder has layers 0..{n - 1}")
    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout, target_modules=list(targets),
                        layers_to_transform=layers, layers_pattern="layer" if layers else None)
    try:
        inject_adapter_in_model(config, model.encoder)
    except ValueError as e:      # peft's "Target modules {...} not found in the base model" and kin
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.layers[0].named_modules()
                        if type(m).__name__ == "Linear"})
        raise MTLError(f"cannot add LoRA: {str(e).splitlines()[0]} Linear modules in a layer: {', '.join(names)}") from None
    model.lora = {"rank": rank, "layers": layers, "targets": list(targets), "alpha": alpha or 2 * rank,
                  "dropout": dropout}
    model.train(model.training)
    return model


def lora_layers(model):
    from peft.tuners.tuners_utils import BaseTunerLayer
    return [m for m in model.encoder.modules() if isinstance(m, BaseTunerLayer)]


def merge_lora(model):
    """Fold every adapter into its weight (W <- W + scale * B A) and put the plain layer back in
    its place (peft's merge and unload): the model then predicts the same, up to float rounding,
    at the cost of the plain encoder, and saves and trains as a model without LoRA."""
    adapted = set(map(id, lora_layers(model)))
    for name, layer in [(n, m) for n, m in model.encoder.named_modules() if id(m) in adapted]:
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.encoder.get_submodule(parent) if parent else model.encoder, child, layer.get_base_layer())
    model.lora = None
    return model
