"""Level 1 and 2 training: LoRA, prefix tuning and full fine-tuning with evaluation during
training, checkpoints and resume, and artifacts with lineage (see docs/tuning.md).

job (TuneJob, its id) -> collate (examples -> ids and labels) -> methods (PEFT / full) ->
trainer (the loop, checkpoints, evaluate) -> artifacts (adapter or weights + rung-lineage.json).
`plan` builds a job from rung.yaml; `worker` runs a job file (e.g. under accelerate launch).
"""
