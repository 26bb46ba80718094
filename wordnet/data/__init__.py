"""The data: the course's 4-gram splits and vocabulary (``dataset``), the sentences the
other models read (``corpus``), the copy shipped with the package (``embedded``) and
upstream's files (``fetch``)."""
