"""rnnprune example plugin: forecast next year's sunspot number from the past years'.

- `task`: the `sunspots` task (yearly series shipped with statsmodels; RMSE in sunspot
  numbers, lower is better);
- `model`: the `sunspots_lstm` factory (a plain PyTorch LSTM forecaster);
- `method`: the `gate_balanced_magnitude` pruning method.
"""
