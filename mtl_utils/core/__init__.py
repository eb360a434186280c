"""The core a learner studies: data, the model and its named blocks, freezing, the optimizer,
the frozen-prefix cache, the training loop and the policies around it, metrics, checkpoints.

    data.py, snips.py   sentences with two labels -> a DatasetDict; subword alignment; batches
    model.py            shared encoder + intent head + slot head, named blocks, the backbone
    freezing.py         freeze / unfreeze / freeze_to, presets (BitFit too), trainable report
    lora.py             LoRA adapters on the encoder through peft
    optim.py            AdamW groups per block: differential and layer-wise lrs, schedules
    caching.py          compute the frozen prefix of the encoder once; the Trainer's batches
    training.py         the Trainer: one loop, its freezing verbs, evaluation, History
    callbacks.py        the policies around the loop: guided stages, encoder-epoch budget, gradient norms
    distributed.py      one process or several (accelerate): what the loop asks of them
    resume.py           save after every epoch, continue an interrupted run
    device.py           device and precision (bf16 / fp16 + GradScaler / fp32), peak memory
    metrics.py          intent accuracy, seqeval slot F1, frame accuracy
    checkpoint.py       save / load a trained model, whole or as a delta, safetensors + JSON
    predict.py          a trained model's intent and slot tags for new sentences
    config.py           TrainConfig, Stage, Budget: every default in one place
    common.py           the error type and the log
"""
