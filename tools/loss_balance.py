"""How strongly each loss term pulls on its network: gradient norms of R's and D's loss terms at trained weights.

    python tools/loss_balance.py RUN_OR_MODEL [--records ../shared/data/records.json] [--source track1]
        [--batches 3] [--batch-size 8]

RUN_OR_MODEL is a run folder (or a bundled model name) holding ``reconstruction.safetensors`` and
``degradation.safetensors``. On a few training batches it prints, for every term of loss_R and loss_D
(with its weight), the loss value and the norm of its gradient with respect to the network it trains.
A term whose gradient is a hundredth of the others' does not steer training: this is how we found that
R's official L1 weight (0.01) leaves R's colours to the colour-blind VGG54 content term (docs/results.md,
"Colour drift"). Discriminator terms are left out (discriminators are not saved with the models).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ddnsr.formats.modelfile import load_model
from ddnsr.nets import VGG19Features, VGGStyleDiscriminator
from ddnsr.training.data import load_records, make_unpaired
from ddnsr.training.losses import LossConfig, Networks, forward_losses

# (network, loss term, weight): each term of loss_R and loss_D at the official weights, R's L1 also at 1
TERMS = (("R", "content_up", 1.0), ("R", "cycle_up", 0.01), ("R", "cycle_up", 1.0),
         ("D", "content_down", 0.1), ("D", "cycle_down", 10.0), ("D", "color_down", 1.0))


def grad_norm(loss: torch.Tensor, net: torch.nn.Module) -> float:
    grads = torch.autograd.grad(loss, list(net.parameters()), retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--records", default="../shared/data/records.json")
    ap.add_argument("--data-root")
    ap.add_argument("--source", default="track1")
    ap.add_argument("--target", default="div2k")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    folder = Path(args.model)
    if folder.is_dir():
        R, D = load_model(folder / "reconstruction.safetensors"), load_model(folder / "degradation.safetensors")
    else:
        R, D = load_model(args.model), load_model(args.model, kind="degradation")
    cfg = LossConfig()
    # the discriminators are not saved with the models: untrained stand-ins, only so that the losses run
    nets = Networks(R=R.train(), D=D.train(), Dhr=VGGStyleDiscriminator(32, 5, 128),
                    Dlr=VGGStyleDiscriminator(64, 3, 32), vgg=VGG19Features(cfg.taps))
    records = Path(args.records)
    stream = make_unpaired(load_records(records), Path(args.data_root) if args.data_root else records.parent,
                           args.source, args.target, batch_size=args.batch_size, lr_crop=32, crops_per_image=16,
                           shuffle_buffer=256, num_workers=0, seed=1)
    rows: dict[str, list[tuple[float, float]]] = {}
    torch.manual_seed(0)
    for _, (x, y) in zip(range(args.batches), stream, strict=False):
        losses = forward_losses(nets, x, y, cfg).losses
        for net, term, weight in TERMS:
            loss = weight * losses[term]
            rows.setdefault(f"{net}: {term}, weight {weight:g}", []).append(
                (float(loss.detach()), grad_norm(loss, R if net == "R" else D)))
    print(f"{'term':44s} {'value':>10s} {'|gradient|':>12s}")
    for name, vals in rows.items():
        print(f"{name:44s} {sum(v for v, _ in vals) / len(vals):10.4f} {sum(g for _, g in vals) / len(vals):12.4f}")


if __name__ == "__main__":
    main()
