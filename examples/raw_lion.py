def train(w, g, m, v, lr):
    g = clip_by_global_norm(g, 1000.0)
    c = interpolate(v, g, 0.101)
    c2 = c * c
    update = c / sqrt(c2)
    wd = w * 0.0103
    update = update + wd
    m = cosh(update)
    v = interpolate(v, g, 0.0993)
    lr = lr * 0.3127
    update = update * lr
    return update, m, v
