"""The auditor's oversight of departments: evaluation (Art. 23) and violation findings (Art. 24), from the
events of the other services, in the auditor's own database."""
