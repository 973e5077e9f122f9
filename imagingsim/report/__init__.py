"""The teaching report: a self-contained HTML page of modality trade-offs measured from a dataset.

Modules: ``dataset`` (reading a written dataset, masks, measuring helpers), ``figures`` (the
shared figures), ``build`` (the common sections and each modality's through the Modality
contract), ``html`` (the page), ``command`` (``imagingsim report``: checks, atomic writes).
"""
