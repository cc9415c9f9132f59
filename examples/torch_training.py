# A PyTorch training loop with an update rule exported by symopt (pip install 'symopt[torch]').
# A rule a search found: symopt export runs/quick --torch -o found.py, then from found import FoundRank1.
import torch

import symopt

rule = symopt.parse("""
def lion(w, g, m, lr):
    b1 = 0.9
    b2 = 0.99
    wd = 0.01
    c = interpolate(g, m, b1)
    update = lr * (sign(c) + wd * w)
    m = interpolate(g, m, b2)
    return update, m
""")
Lion = symopt.to_torch(rule)  # a torch.optim.Optimizer subclass

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
opt = Lion(model.parameters(), lr=3e-3, wd=0.1)  # the program's constants are keyword arguments
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200)
x = torch.randn(256, 8)
y = torch.sin(x.sum(dim=1, keepdim=True))
for step in range(200):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    schedule.step()
    if step % 50 == 0 or step == 199:
        print(f"step {step:3d}  loss {loss.item():.4f}")
