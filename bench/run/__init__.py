"""The running side: scenario files -> plan -> runner -> trials on the engines."""
