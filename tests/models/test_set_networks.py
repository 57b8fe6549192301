"""User networks for a modality (MultimodalVAE.set_networks): checked by a probe, then trained as any other."""

import pytest
import torch
from torch import nn

from memevae.models import MEME, MEMEConfig

LATENT = 4


class FlatEncoder(nn.Module):
    """A user encoder: one linear layer from the flattened image to (loc, raw_scale)."""

    def __init__(self, shape, latent_dim):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(torch.Size(shape).numel(), 2 * latent_dim), nn.Dropout(0.5))

    def forward(self, x):
        return self.body(x).chunk(2, -1)


def flat_decoder(shape, latent_dim):
    return nn.Sequential(nn.Linear(latent_dim, torch.Size(shape).numel()), nn.Sigmoid(), nn.Unflatten(1, shape))


def small_model():
    torch.manual_seed(0)
    return MEME(MEMEConfig(latent_dim=LATENT, pseudo_samples=3, classifier_samples=3))


def test_user_networks_train_one_step_of_meme(tiny_batch):
    model = small_model()
    encoder, decoder = FlatEncoder((3, 32, 32), LATENT), flat_decoder((3, 32, 32), LATENT)
    model.set_networks("textured", encoder=encoder, decoder=decoder)
    assert model.modality("textured").encoder is encoder and model.modality("textured").decoder is decoder
    assert encoder.training  # the probe ran in eval mode and restored the mode
    before = [p.detach().clone() for p in (*encoder.parameters(), *decoder.parameters())]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model(tiny_batch()).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    after = [*encoder.parameters(), *decoder.parameters()]
    assert all(not torch.equal(b, a) for b, a in zip(before, after))


def test_the_mode_of_an_eval_network_is_kept():
    model = small_model()
    encoder = FlatEncoder((1, 28, 28), LATENT).eval()
    model.set_networks("mnist", encoder=encoder)
    assert not encoder.training


@pytest.mark.parametrize("networks, message", [
    ({"encoder": FlatEncoder((1, 28, 28), LATENT + 1)},
     r"modality 'mnist': the encoder must map a batch \(2, 1, 28, 28\) to \(loc, raw_scale\) \(\(2, 4\), \(2, 4\)\); "
     r"it returned \(\(2, 5\), \(2, 5\)\)"),
    ({"decoder": nn.Linear(LATENT, 784)},
     r"modality 'mnist': the decoder must map a batch \(2, 4\) to \(2, 1, 28, 28\); it returned \(2, 784\)"),
    ({"decoder": flat_decoder((1, 28, 28), LATENT + 1)},
     r"modality 'mnist': the decoder must map a batch \(2, 4\) to \(2, 1, 28, 28\); it returned an error \(RuntimeError: "),
])
def test_networks_of_the_wrong_size_are_refused_in_one_line(networks, message):
    model = small_model()
    original = dict(model.modality("mnist").named_children())
    with pytest.raises(ValueError, match=message) as info:
        model.set_networks("mnist", **networks)
    assert "\n" not in str(info.value)
    assert dict(model.modality("mnist").named_children()) == original  # nothing replaced
