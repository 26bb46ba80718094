"""The data: the course's 4-gram splits and vocabulary (``dataset``), the sentences the
other models read (``corpus``), the copy shipped with the package (``embedded``),
upstream's files (``fetch``), and a user's text made a data folder (``build``, by the
rule of ``text``; ``folder`` reads what it made)."""
