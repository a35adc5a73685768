"""The dataset generator: online SAC behaviour policies and the D4RL-recipe dataset maker; not a method of this
project."""
