"""The exported modules' definitions of the library's reductions, one text per framework.

``symopt.export_source`` writes these into a standalone module when the program uses the
function (rows of :data:`symopt.programs.functions.FUNCTIONS` carry them as ``export`` and
``torch``). JAX: trees of arrays, read with ``tree_map`` and summed with ``_total``/``_leaf_sum``;
PyTorch: lists of tensors, one per parameter of a group, with the same helpers' torch forms
(``symopt.export.torch_source``).
"""

JAX = {
    'global_norm': '''def global_norm(x):
    """The L2 norm of the whole tree (a scalar)."""
    return jnp.sqrt(_total(tree_map(jnp.square, x)))
''',

    'dot': '''def dot(x, y):
    """The inner product of two trees (a scalar)."""
    return _total(tree_map(lambda a, b: a * b, x, y))
''',

    'cosine_sim': '''def cosine_sim(x, y):
    """dot(x, y) / (global_norm(x) * global_norm(y) + 1e-8) (a scalar)."""
    return dot(x, y) / (global_norm(x) * global_norm(y) + 1e-08)
''',

    'clip_by_global_norm': '''def clip_by_global_norm(x, c):
    """x * min(1, c / (global_norm(x) + 1e-8))."""
    factor = jnp.minimum(1.0, c / (global_norm(x) + 1e-08))
    return tree_map(lambda a: a * factor, x)
''',

    'norm': '''def norm(x):
    """The L2 norm of each tensor: a tree of 0-d arrays."""
    return tree_map(lambda a: jnp.sqrt(_leaf_sum(jnp.square(a))), x)
''',

    'orthogonalize': '''def orthogonalize(x):
    """Muon's Newton-Schulz orthogonalisation of each leaf's matrix view (a vector is one column):
    X = M / (||M||_F + 1e-8), transposed when tall, then X <- aX + (bA + cA^2)X with A = X X^T, 5 times,
    (a, b, c) = (3.4445, -4.775, 2.0315)."""
    def newton_schulz(m, ndim):
        tall = m.shape[-2] > m.shape[-1]
        x = m.T if tall else m
        x = x / (jnp.linalg.norm(x, ord="fro") + 1e-08)
        for _ in range(5):
            a = x @ x.T
            x = 3.4445 * x + (-4.775 * a + 2.0315 * (a @ a)) @ x
        return x.T if tall else x
    return _matrices(newton_schulz, x)
''',

    'row_mean': '''def row_mean(x):
    """The mean of each row of each leaf's matrix view, spread over the row (a vector is one column)."""
    return _matrices(lambda m, ndim: _mean_over(m, -1), x)
''',

    'col_mean': '''def col_mean(x):
    """The mean of each column of each leaf's matrix view, spread over the column (a vector is one column)."""
    return _matrices(lambda m, ndim: _mean_over(m, -2), x)
''',

    'rows': '''def rows(x):
    """The number of rows of each leaf's matrix view: all axes but the last (a vector: its length)."""
    return _matrices(lambda m, ndim: jnp.full_like(m, m.shape[-2]), x)
''',

    'cols': '''def cols(x):
    """The number of columns of each leaf's matrix view: its last axis (a vector: 1)."""
    return _matrices(lambda m, ndim: jnp.full_like(m, m.shape[-1]), x)
''',

    'is_matrix': '''def is_matrix(x):
    """1 on the leaves of two or more axes, 0 on vectors and 0-d leaves."""
    return _matrices(lambda m, ndim: jnp.full_like(m, 1.0 if ndim >= 2 else 0.0), x)
''',
}

TORCH = {
    'global_norm': '''def global_norm(x):
    """The L2 norm of all the tensors together (a scalar)."""
    return torch.sqrt(_total(tree_map(torch.square, x)))
''',

    'dot': '''def dot(x, y):
    """The inner product of two lists of tensors (a scalar)."""
    return _total(tree_map(lambda a, b: a * b, x, y))
''',

    'cosine_sim': '''def cosine_sim(x, y):
    """dot(x, y) / (global_norm(x) * global_norm(y) + 1e-8) (a scalar)."""
    return dot(x, y) / (global_norm(x) * global_norm(y) + 1e-08)
''',

    'clip_by_global_norm': '''def clip_by_global_norm(x, c):
    """x * min(1, c / (global_norm(x) + 1e-8))."""
    factor = torch.minimum(_tensor(1.0), _tensor(c / (global_norm(x) + 1e-08)))
    return tree_map(lambda a: a * factor, x)
''',

    'norm': '''def norm(x):
    """The L2 norm of each tensor: a list of 0-d tensors."""
    return tree_map(lambda a: torch.sqrt(_leaf_sum(torch.square(a))), x)
''',

    'orthogonalize': '''def orthogonalize(x):
    """Muon's Newton-Schulz orthogonalisation of each tensor's matrix view (a vector is one column):
    X = M / (||M||_F + 1e-8), transposed when tall, then X <- aX + (bA + cA^2)X with A = X X^T, 5 times,
    (a, b, c) = (3.4445, -4.775, 2.0315)."""
    def newton_schulz(m, ndim):
        tall = m.shape[-2] > m.shape[-1]
        x = m.T if tall else m
        x = x / (torch.linalg.norm(x, ord="fro") + 1e-08)
        for _ in range(5):
            a = x @ x.T
            x = 3.4445 * x + (-4.775 * a + 2.0315 * (a @ a)) @ x
        return x.T if tall else x
    return _matrices(newton_schulz, x)
''',

    'row_mean': '''def row_mean(x):
    """The mean of each row of each tensor's matrix view, spread over the row (a vector is one column)."""
    return _matrices(lambda m, ndim: _mean_over(m, -1), x)
''',

    'col_mean': '''def col_mean(x):
    """The mean of each column of each tensor's matrix view, spread over the column (a vector is one column)."""
    return _matrices(lambda m, ndim: _mean_over(m, -2), x)
''',

    'rows': '''def rows(x):
    """The number of rows of each tensor's matrix view: all axes but the last (a vector: its length)."""
    return _matrices(lambda m, ndim: torch.full_like(m, m.shape[-2]), x)
''',

    'cols': '''def cols(x):
    """The number of columns of each tensor's matrix view: its last axis (a vector: 1)."""
    return _matrices(lambda m, ndim: torch.full_like(m, m.shape[-1]), x)
''',

    'is_matrix': '''def is_matrix(x):
    """1 on the tensors of two or more axes, 0 on vectors and 0-d tensors."""
    return _matrices(lambda m, ndim: torch.full_like(m, 1.0 if ndim >= 2 else 0.0), x)
''',
}
