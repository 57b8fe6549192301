"""The caption and image-feature modality kinds (paper Table 8c/8d) and what MEME needs of them:
sizes from the data, token ids and relaxed one-hot captions through one encoder, a categorical
likelihood that skips padding, learnable pseudo-samples that gradients reach."""

import pytest
import torch

from memevae.data import MultimodalDataset
from memevae.modalities import build_modality
from memevae.modalities.likelihoods import CategoricalLikelihood
from memevae.models import MEME, MEMEConfig, MMVAE, MMVAEConfig, MVAE, MVAEConfig

VOCABULARY = 11
KINDS = {"image": "features-mlp", "caption": "caption-conv"}
SHAPES = {"image": (20,), "caption": (32, VOCABULARY)}


def captions(n, generator):
    """Token ids with words (3..10), an end-of-sentence token (1) and padding (0)."""
    tokens = torch.zeros(n, 32, dtype=torch.long)
    for row in range(n):
        length = int(torch.randint(3, 20, (), generator=generator))
        tokens[row, :length] = torch.randint(3, VOCABULARY, (length,), generator=generator)
        tokens[row, length] = 1
    return tokens


def test_sizes_the_data_decide_are_required_and_checked():
    with pytest.raises(ValueError, match=r"takes sizes from the data \(shape \(32, any\)\)"):
        build_modality("caption-conv", latent_dim=4)
    with pytest.raises(ValueError, match=r"takes examples of shape \(32, any\), not \(30, 11\)"):
        build_modality("caption-conv", latent_dim=4, shape=(30, 11))
    m = build_modality("caption-conv", latent_dim=4, shape=(32, VOCABULARY))
    assert (m.shape, m.data_shape, m.format) == ((32, VOCABULARY), (32,), "tokens")
    with pytest.raises(ValueError, match="shapes"):
        MEMEConfig(modalities=KINDS, latent_dim=4)


def test_caption_encoder_reads_token_ids_and_their_one_hot_vectors_alike():
    torch.manual_seed(0)
    m = build_modality("caption-conv", latent_dim=6, shape=(32, VOCABULARY)).eval()
    tokens = captions(3, torch.Generator().manual_seed(1))
    from_ids, from_one_hot = m.encode(tokens), m.encode(m.relax(tokens))
    assert m.relax(tokens).shape == (3, 32, VOCABULARY)
    torch.testing.assert_close(from_ids.loc, from_one_hot.loc)
    torch.testing.assert_close(from_ids.scale, from_one_hot.scale)
    logits = m.decode(torch.randn(5, 3, 6))
    assert logits.shape == (5, 3, 32, VOCABULARY)
    assert m.log_likelihood(tokens, logits).shape == (5, 3)
    assert m.mean(logits).shape == (5, 3, 32) and m.mean(logits).dtype == torch.long


def test_the_decoder_scores_words_with_the_encoders_embedding_transposed():
    m = build_modality("caption-conv", latent_dim=6, shape=(32, VOCABULARY))
    assert m.decoder.embedding.weight is m.encoder.embedding.weight
    m.eval()
    z = torch.randn(2, 6)
    before = m.decode(z)
    with torch.no_grad():
        m.encoder.embedding.weight[5].add_(1.0)  # changing the encoder's word 5 changes the decoder's score of word 5 only
    changed = (m.decode(z) != before).any(0).any(0)
    assert changed.tolist() == [k == 5 for k in range(VOCABULARY)]
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in m.encoder.parameters()) + sum(
        p.numel() for name, p in m.decoder.named_parameters() if not name.startswith("embedding"))  # counted once


def test_categorical_likelihood_skips_padding_and_scores_every_other_token():
    like = CategoricalLikelihood(event_dims=2, pad=0)
    logits = torch.randn(2, 1, 4, 5)
    tokens = torch.tensor([[3, 4, 1, 0]])
    expected = sum(torch.log_softmax(logits[:, 0, i], -1)[:, tokens[0, i]] for i in range(3))
    torch.testing.assert_close(like.log_prob(tokens, logits), expected[:, None])
    # a naive sum over all positions (padding scored) differs
    naive = torch.log_softmax(logits, -1).gather(-1, tokens.expand(2, 1, 4).unsqueeze(-1)).squeeze(-1).sum(-1)
    assert not torch.allclose(like.log_prob(tokens, logits), naive)


def test_feature_networks_follow_table_8c():
    m = build_modality("features-mlp", latent_dim=8, shape=(2048,))
    widths = [layer.out_features for layer in m.encoder.body if isinstance(layer, torch.nn.Linear)]
    back = [layer.out_features for layer in m.decoder.body if isinstance(layer, torch.nn.Linear)]
    assert widths == [1024, 512, 256] and back == [256, 512, 1024, 2048]
    assert not isinstance(list(m.decoder.body)[-1], torch.nn.Sigmoid)  # no output activation


def toy_data(n=40):
    g = torch.Generator().manual_seed(0)
    banks = {"image": torch.randn(n, 20, generator=g), "caption": captions(n, g)}
    index = {m: torch.arange(n) for m in banks}
    index["caption"][n // 2:] = -1  # half the rows: images alone
    vocabulary = ["<pad>", "<eos>", "<unk>", *map(str, range(VOCABULARY - 3))]
    return MultimodalDataset(banks, index, torch.zeros(n, dtype=torch.long), "toy", vocabularies={"caption": vocabulary})


def test_meme_pseudo_captions_start_as_real_captions_and_gradients_reach_them():
    data = toy_data()
    assert data.model_shape("caption") == (32, VOCABULARY)
    torch.manual_seed(0)
    model = MEME(MEMEConfig(modalities=KINDS, shapes={m: data.model_shape(m) for m in KINDS}, latent_dim=4, pseudo_samples=3))
    model.initialise(data, torch.Generator().manual_seed(0))
    pseudo = model.pseudo_samples["caption"]
    assert pseudo.shape == (3, 32, VOCABULARY)
    assert torch.equal(pseudo.sum(-1), torch.ones(3, 32)) and set(pseudo.unique().tolist()) == {0.0, 1.0}
    real = {tuple(row.tolist()) for row in data.banks["caption"][: len(data) // 2]}
    assert {tuple(row.argmax(-1).tolist()) for row in pseudo} <= real
    image_only = data.batch(torch.arange(len(data) // 2, len(data)))
    model(image_only).loss.backward()  # an image alone has the mixture prior over pseudo-captions (Eq. 4)
    assert pseudo.grad is not None and pseudo.grad.abs().sum() > 0


@pytest.mark.parametrize("model_class, config_class", [(MEME, MEMEConfig), (MVAE, MVAEConfig), (MMVAE, MMVAEConfig)])
def test_every_model_takes_a_step_on_image_features_and_captions(model_class, config_class):
    data = toy_data()
    torch.manual_seed(0)
    options = {"pseudo_samples": 3} if model_class is MEME else {}
    model = model_class(config_class(modalities=KINDS, shapes=SHAPES, latent_dim=4, **options))
    model.initialise(data, torch.Generator().manual_seed(0))
    paired = data.batch(torch.arange(len(data) // 2))
    out = model(paired)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.modality("caption").encoder.embedding.weight.grad.abs().sum() > 0
    assert model.translate(paired.data["image"], "image", "caption").shape == (len(paired), 32)


def test_mmvae_official_cub_preset_weights_and_likelihoods():
    from memevae.models import preset_options
    from memevae.modalities.likelihoods import CategoricalLikelihood, LaplaceLikelihood

    options = preset_options("mmvae", "official-cub")
    model = MMVAE(MMVAEConfig(modalities=KINDS, shapes=SHAPES, **{**options, "importance_samples": 2}))
    assert model.likelihood_weights == {"image": 0.002, "caption": 1.0}
    image, caption = model.modality("image").likelihood, model.modality("caption").likelihood
    assert isinstance(image, LaplaceLikelihood) and image.scale == 0.01
    assert isinstance(caption, CategoricalLikelihood)
    # the dimension rule counts a caption's 32 tokens, not its 32 x V scores
    scaled = MMVAE(MMVAEConfig(modalities=KINDS, shapes=SHAPES, latent_dim=4))
    assert scaled.likelihood_weights == {"image": 32 / 20, "caption": 1.0}
    with pytest.raises(ValueError, match=r"likelihood_weights names modalities \['image'\]"):
        MMVAEConfig(**options)  # the MNIST-Textured default modalities
