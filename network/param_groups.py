"""The optimiser's parameter groups of psa's trainers, for every network built on a
pretrained backbone with new layers on top (classifier, AffinityNet, LargeFOV,
DeepLab-v2)."""


def parameter_groups(net, new_layers):
    """psa's four groups of trainable parameters: (backbone weights, backbone biases, new
    weights, new biases); the optimiser gives them 1×, 2×, 10×, 20× the base learning rate
    (no weight decay on biases). Trained BatchNorm parameters count as backbone ones."""
    new_ids = {id(p) for layer in new_layers for p in layer.parameters()}
    groups = ([], [], [], [])
    for name, param in net.named_parameters():
        if param.requires_grad:
            groups[(2 if id(param) in new_ids else 0) + name.endswith("bias")].append(param)
    return groups
