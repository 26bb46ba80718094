"""The models: what they share (``base``: parameters, backends, threads, momentum), each
kind's mathematics in a module of its own (``fourgram``, ``window``, ``skipgram``), their
initial weights (``init``), their files (``checkpoint``) and their use (``predictor``)."""
