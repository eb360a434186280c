"""The freeze panel: one toggle per block, flipped with the mouse, applied at once.

    panel = FreezePanel(model, data, tokenizer, config)   # data/tokenizer only for training
    panel                                                # shows it in a notebook

- a toggle per block (embeddings, each layer, each head): pressed = trainable. Flipping it
  calls freeze()/unfreeze() on that block right away and redraws the trainable-parameter chart;
- a preset row (freezing.PRESETS, BitFit included) sets all toggles at once; a block that
  only partly trains (BitFit's biases, LoRA's adapters) shows as a half-pressed amber toggle;
- "train N steps" (when data is given) trains a few steps with the current choice and plots
  the gradient norm of every block: frozen blocks stay at exactly zero.

`panel.changed` tells whether someone used the panel, so that a notebook can apply a default
choice in code when nobody did (a static web page, a test run).
Only core ipywidgets (ToggleButton, ToggleButtons, Button, Output, HBox, VBox), which Colab
renders natively with its ipywidgets 7.7; figures are redrawn with plain matplotlib into
Output widgets.
"""
import dataclasses

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import clear_output, display

from ..core.freezing import PRESETS, apply_preset, block_state, freeze, unfreeze
from .plots import plot_grad_norms, plot_trainable


class FreezePanel:

    def __init__(self, model, data=None, tokenizer=None, config=None, steps=8):
        self.model, self.data, self.tokenizer, self.config, self.steps = model, data, tokenizer, config, steps
        self.redraws = 0
        self.changed = False
        self.last_history = None
        self._syncing = False
        self.toggles = {}
        for name, block in model.blocks().items():
            t = W.ToggleButton(value=block_state(block) != "frozen", description=name, layout=W.Layout(width="auto"),
                               tooltip=f"pressed = {name} trains; released = frozen")
            t.observe(self._on_toggle, names="value")
            self.toggles[name] = t
        self.preset = W.ToggleButtons(options=["custom"] + list(PRESETS), value="custom",
                                      description="preset", style={"button_width": "auto"})
        self.preset.observe(self._on_preset, names="value")
        self.chart = W.Output()
        self.grad_chart = W.Output()
        rows = [self.preset, W.HBox(list(self.toggles.values()), layout=W.Layout(flex_flow="row wrap")),
                self.chart]
        if data is not None:
            self.train_button = W.Button(description=f"train {steps} steps", icon="play")
            self.train_button.on_click(self._on_train)
            rows += [self.train_button, self.grad_chart]
        self.widget = W.VBox(rows)
        self._style()
        self.redraw()

    # -- callbacks -----------------------------------------------------------------------------
    def _on_toggle(self, change):
        if self._syncing:
            return
        name = change["owner"].description
        (unfreeze if change["new"] else freeze)(self.model, name)
        self.changed = True
        self._syncing = True
        self.preset.value = "custom"
        self._syncing = False
        self._style()
        self.redraw()

    def _on_preset(self, change):
        if self._syncing or change["new"] == "custom":
            return
        apply_preset(self.model, change["new"])
        self.changed = True
        self._syncing = True
        for name, t in self.toggles.items():
            t.value = block_state(self.model.blocks()[name]) != "frozen"
        self._syncing = False
        self._style()
        self.redraw()

    def _on_train(self, _=None):
        from ..core.config import TrainConfig
        from ..core.training import Trainer
        config = self.config or TrainConfig()
        n = min(len(self.data["train"]), self.steps * config.batch_size)
        part = dict(self.data)
        part["train"] = self.data["train"].select(range(n))
        part["validation"] = self.data["validation"].select(range(min(64, len(self.data["validation"]))))
        trainer = Trainer(self.model, part, self.tokenizer, dataclasses.replace(config, progress=False))
        self.last_history = trainer.fit(1)            # trains exactly what the toggles say
        with self.grad_chart:
            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(7, 3))
            plot_grad_norms(self.last_history, ax, title=f"gradient norms over {trainer.step} steps")
            plt.show()
            plt.close(fig)

    # -- drawing -------------------------------------------------------------------------------
    def _style(self):
        blocks = self.model.blocks()
        for name, t in self.toggles.items():
            state = block_state(blocks[name])
            t.button_style = {"train": "success", "partial": "warning", "frozen": ""}[state]
            t.icon = {"train": "unlock", "partial": "adjust", "frozen": "lock"}[state]

    def redraw(self):
        self.redraws += 1
        with self.chart:
            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(7, 3))
            plot_trainable(self.model, ax)
            plt.show()
            plt.close(fig)

    def _ipython_display_(self):
        display(self.widget)
