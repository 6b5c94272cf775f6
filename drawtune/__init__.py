"""drawtune: annotated engineering drawings in, a fine-tuned Qwen-VL detector out.

One subpackage per stage of the workflow (``rules/*.smk``): ``data`` (read, validate, split,
convert, synthesise), ``train`` (ms-swift commands and the GPU stages), ``eval`` (answers,
matching, metrics), ``report`` and ``vertex`` (the Vertex AI profile). What every stage shares
sits at the top: ``errors``, ``jsonio``, ``paths`` (the workflow's tree) and ``coords``.

Imports form layers, without cycles: the top modules use nothing else; ``eval`` and ``train``
use the top; ``data`` uses the top and ``eval.parse`` (a swift dataset's answers); ``config``
resolves settings with ``data``'s class lists; ``report`` and ``vertex`` use the stages they
show or run; ``smk`` (the scripts' glue), ``cli`` and ``serve`` (the ``drawtune`` command) sit
on everything.
"""
