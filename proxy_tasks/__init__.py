"""Proxy tasks: small JAX training problems on which symopt scores candidate optimizers.

    >>> import proxy_tasks
    >>> task = proxy_tasks.get("mlp_digits")
    >>> losses, eval_loss = proxy_tasks.train(task, proxy_tasks.adamw(task), seed=0)

A `Task` holds pure functions (init, loss, batch, eval_loss) and the AdamW reference
settings; all data are closed-over constants, so a whole run is one `lax.scan` under one
`jit`. Tasks tagged "search" drive the search (the `_large` ones are its funnel stages);
"validation" tasks are held out for the final ranking: eight model families, most on data of
their own (synthetic tables, regressions, a manifold, a bracket grammar), each also as
NAME_const, the same task at a constant learning rate instead of warm-up + cosine decay
(`names("validation")` is the whole set); "toy" tasks are NumPy quadratics for tests and
debugging (proxy_tasks.toy), which symopt trains without JAX. Everything runs offline: the
digits and the text ship in proxy_tasks/data/ (see proxy_tasks.build_data).
`get("package.module:attr")` loads a task of the user's own by import path (proxy_tasks.imported).

Cost of one AdamW `train` at default size on one CPU core: run time after compile, and
compile time (`taskset -c 0 python -m proxy_tasks.measure`, otherwise idle 2-core machine, 2026-11-30;
tabular_mlp, linreg_illcond, deep_linear, autoencoder_manifold and lm_grammar on 2026-12-07 on the shared
machine, about 1.7x slower to run and 1.4x to compile: see the registry). A NAME_const task runs NAME's
computation, so it costs the same.

    name                       tag         kind           params  steps  lr      run s    compile s
    quadratic_illcond          search      quadratic          48    200  4.0     0.00023  0.47
    quadratic_noisy            search      quadratic          32    200  0.1     0.00044  0.66
    rosenbrock                 search      rosenbrock          8    300  0.1     8.7e-05  0.31
    logreg_synthetic           search      logistic           33    200  0.06    0.00057  0.8
    mlp_digits                 search      mlp              4810    200  0.05    0.0039   1.2
    autoencoder_digits         search      autoencoder      4744    300  0.05    0.0075   1.3
    lm_char                    search      lm              20032    200  0.01    0.09     3.1
    lm_char_short              search      lm              20032     50  0.02    0.025    3.6
    mlp_digits_large           search      mlp             85002    500  0.01    0.22     1.8
    lm_char_large              search      lm              67488    300  0.009   0.57     3.5
    cnn_digits                 validation  cnn              3818    200  0.03    0.026    1.9
    lstm_char                  validation  rnn             28512    200  0.06    0.21     2.1
    matrix_completion          validation  factorization     768    300  0.2     0.0012   0.91
    tabular_mlp                validation  tabular          6532    200  0.04    0.0099   1.6
    linreg_illcond             validation  regression       2080    200  0.3     0.012    1.9
    deep_linear                validation  deep_linear     12288    100  0.04    0.013    2.0
    autoencoder_manifold       validation  autoencoder     10448    300  0.03    0.029    1.8
    lm_grammar                 validation  transformer     15360    100  0.015   0.065    4.1
    cnn_digits_const           validation  cnn              3818    200  0.015   0.026    1.9
    lstm_char_const            validation  rnn             28512    200  0.03    0.21     2.1
    matrix_completion_const    validation  factorization     768    300  0.025   0.0012   0.91
    tabular_mlp_const          validation  tabular          6532    200  0.04    0.0099   1.6
    linreg_illcond_const       validation  regression       2080    200  0.06    0.012    1.9
    deep_linear_const          validation  deep_linear     12288    100  0.012   0.013    2.0
    autoencoder_manifold_const validation  autoencoder     10448    300  0.005   0.029    1.8
    lm_grammar_const           validation  transformer     15360    100  0.008   0.065    4.1
"""

from proxy_tasks.imported import is_import_path
from proxy_tasks.registry import check, get, names, require_trainable, tag
from proxy_tasks.task import Task, adamw, train, training_run

__all__ = ["Task", "adamw", "check", "get", "is_import_path", "names", "require_trainable", "tag", "train",
           "training_run"]
