"""Fine-tuning: jobs on OpenAI and the local LoRA trainer (studio.finetune.trainer, which
imports torch and peft only when it trains)."""
