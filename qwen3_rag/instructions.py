"""Instruction presets and the exact Qwen3 input templates.

Qwen3-Embedding and Qwen3-Reranker were trained with one-sentence English task instructions.
The presets below reuse the strings the Qwen team published (README, examples and the per-task
prompts of their MTEB evaluation) verbatim, typos included, because those are what the models saw.

Every template of the recipe lives here, once:

* embedding query: ``"Instruct: {instruction}\\nQuery:{text}"``
  (documents are embedded as raw text unless the preset is symmetric);
* reranker: a fixed system prefix, the body
  ``"<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {document}"`` and a fixed suffix.
  The body is the query half (:func:`format_rerank_query`) followed by the document half
  (:func:`format_rerank_document`): model servers take the two halves as separate strings.

Example:
    >>> from qwen3_rag.instructions import resolve_instruction, format_query
    >>> preset = resolve_instruction("semantic_similarity")
    >>> preset.symmetric
    True
    >>> format_query(preset.instruction, "A cat sits.")
    'Instruct: Retrieve semantically similar text\\nQuery:A cat sits.'
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_PRESET",
    "EOS_TOKEN",
    "PRESETS",
    "RERANK_PREFIX",
    "RERANK_SUFFIX",
    "InstructionLike",
    "Preset",
    "format_query",
    "format_rerank_body",
    "format_rerank_document",
    "format_rerank_query",
    "resolve_instruction",
]


@dataclass(frozen=True)
class Preset:
    """A named task instruction.

    Attributes:
        name: Short identifier used as the ``instruction`` argument (e.g. ``"web_search"``).
        instruction: The one-sentence English instruction the model sees.
        symmetric: Whether documents get the instruction too. Asymmetric retrieval (a query
            against passages) embeds documents as raw text; symmetric tasks (semantic
            similarity, duplicates, clustering, classification, bitext) apply it to every text,
            as the official evaluation does.
        description: What the preset is for, in a few words.
    """

    name: str
    instruction: str
    symmetric: bool = False
    description: str = ""


def _presets(*items: Preset) -> MappingProxyType[str, Preset]:
    return MappingProxyType({p.name: p for p in items})


#: Every named preset, keyed by name. Plain data: read it, do not mutate it.
PRESETS: MappingProxyType[str, Preset] = _presets(
    Preset(
        "web_search",
        "Given a web search query, retrieve relevant passages that answer the query",
        description="web search / general retrieval (the README default)",
    ),
    Preset(
        "question_answering",
        "Given a question, retrieve Wikipedia passages that answer the question",
        description="open-domain question answering (NQ)",
    ),
    Preset(
        "multi_hop_qa",
        "Given a multi-hop question, retrieve documents that can help answer the question",
        description="multi-hop question answering (HotpotQA)",
    ),
    Preset(
        "financial_qa",
        "Given a financial question, retrieve user replies that best answer the question",
        description="financial question answering (FiQA)",
    ),
    Preset(
        "fact_checking",
        "Given a scientific claim, retrieve documents that support or refute the claim",
        description="fact checking (SciFact)",
    ),
    Preset(
        "counter_argument",
        "Given a claim, find documents that refute the claim",
        symmetric=True,
        description="counter-argument retrieval (ArguAna)",
    ),
    Preset(
        "duplicate_questions",
        "Given a question, retrieve questions that are semantically equivalent to the given "
        "question",
        symmetric=True,
        description="duplicate question detection (Quora)",
    ),
    Preset(
        "semantic_similarity",
        "Retrieve semantically similar text",
        symmetric=True,
        description="semantic similarity and pair classification (STS, SICK-R, XNLI)",
    ),
    Preset(
        "bitext",
        "Retrieve parallel sentences",
        symmetric=True,
        description="bitext mining (translations of the same sentence)",
    ),
    Preset(
        "multilingual_retrieval",
        "Retrieval relevant passage for the given query",
        description="multilingual passage retrieval (MIRACL)",
    ),
    Preset(
        "code_search",
        "Given a question about coding, retrieval code or passage that can solve user's question",
        description="text to code (CoSQA, StackOverflowQA)",
    ),
    Preset(
        "code_to_text",
        "Given a code snippet, retrieve the comment corresponding to that code.",
        description="code to docstring (CodeSearchNet)",
    ),
    Preset(
        "text_to_code",
        "Given a code comment, retrieve the code snippet corresponding to that comment.",
        description="docstring to code (CodeSearchNetCC)",
    ),
    Preset(
        "code_similarity",
        "Given a piece for code, retrieval semantically similar code",
        description="code to similar code (CodeTransOcean)",
    ),
    Preset(
        "text_to_sql",
        "Given a user's question, retrieve SQL queries that are appropriate responses to the "
        "question",
        description="text to SQL",
    ),
    Preset(
        "classification",
        "Given a online banking query, find the corresponding intents",
        symmetric=True,
        description="intent classification (Banking77); write your own for other labels",
    ),
    Preset(
        "clustering",
        "Identify the topic or theme of the given news articles",
        symmetric=True,
        description="topic clustering of news articles",
    ),
    Preset(
        "rerank_user_query",
        "Given the user query, retrieval the relevant passages",
        description="the instruction of the official reranker examples",
    ),
)

#: Name of the preset used when no instruction is given (embedding and reranking).
DEFAULT_PRESET = "web_search"
#: The instruction text of :data:`DEFAULT_PRESET`.
DEFAULT_INSTRUCTION = PRESETS[DEFAULT_PRESET].instruction

#: What the ``instruction`` arguments accept: a preset name, literal text, a :class:`Preset`,
#: ``None`` for the default (:data:`DEFAULT_PRESET`, or the object's own for a per-call
#: argument), or ``""`` for no instruction (queries embedded as raw text).
InstructionLike = str | Preset | None

#: The token every Qwen3-Embedding input ends with (also the padding token of both models).
#: It is not ``tokenizer.eos_token`` (``<|im_end|>``).
EOS_TOKEN = "<|endoftext|>"

RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def resolve_instruction(instruction: InstructionLike) -> Preset | None:
    """Turn an ``instruction`` argument into a :class:`Preset` (or ``None`` for no instruction).

    Args:
        instruction: A preset name from :data:`PRESETS`, literal instruction text (applied to
            queries only), a :class:`Preset` (for a custom symmetric instruction), ``None`` for
            the default preset (:data:`DEFAULT_PRESET`), or ``""`` for no instruction.

    Returns:
        The preset to apply, or ``None`` when texts are to be embedded raw.

    Raises:
        TypeError: If ``instruction`` is not a string, a ``Preset`` or ``None``.
        ValueError: If ``instruction`` is a single word that names no preset (a typo), or a
            ``Preset`` with empty text.

    Example:
        >>> resolve_instruction("web_search").instruction
        'Given a web search query, retrieve relevant passages that answer the query'
        >>> resolve_instruction("Find recipes for the dish").symmetric
        False
        >>> resolve_instruction(None).name, resolve_instruction("")
        ('web_search', None)
    """
    if instruction is None:
        return PRESETS[DEFAULT_PRESET]
    if isinstance(instruction, Preset):
        if not instruction.instruction.strip():
            raise ValueError("instruction: a Preset needs non-empty instruction text")
        return instruction
    if not isinstance(instruction, str):
        raise TypeError(
            f"instruction must be a preset name, instruction text, a Preset or None, "
            f"not {type(instruction).__name__}"
        )
    text = instruction.strip()
    if not text:
        return None
    if text in PRESETS:
        return PRESETS[text]
    if len(text.split()) == 1:
        names = ", ".join(sorted(PRESETS))
        raise ValueError(
            f"instruction={instruction!r} is not a known preset and too short to be an "
            f"instruction. Presets: {names}. Or pass a full sentence of instruction text."
        )
    return Preset(name="custom", instruction=text, symmetric=False)


def format_query(instruction: str | None, text: str) -> str:
    """Format one text the way Qwen3-Embedding expects queries.

    Args:
        instruction: Instruction text, or ``None`` to return ``text`` unchanged.
        text: The query (or, for symmetric tasks, any text).

    Returns:
        ``f"Instruct: {instruction}\\nQuery:{text}"`` (no space after ``Query:``).

    Example:
        >>> format_query("Retrieve parallel sentences", "Bonjour")
        'Instruct: Retrieve parallel sentences\\nQuery:Bonjour'
    """
    if instruction is None:
        return text
    return f"Instruct: {instruction}\nQuery:{text}"


def format_rerank_query(instruction: str, query: str) -> str:
    """Format the query half of a reranker body (what every candidate of one query shares).

    Args:
        instruction: Instruction text.
        query: The query.

    Returns:
        ``f"<Instruct>: {instruction}\\n<Query>: {query}\\n"``.

    Example:
        >>> format_rerank_query("Find it", "q")
        '<Instruct>: Find it\\n<Query>: q\\n'
    """
    return f"<Instruct>: {instruction}\n<Query>: {query}\n"


def format_rerank_document(document: str) -> str:
    """Format the document half of a reranker body.

    Args:
        document: One candidate document.

    Returns:
        ``f"<Document>: {document}"``.

    Example:
        >>> format_rerank_document("d")
        '<Document>: d'
    """
    return f"<Document>: {document}"


def format_rerank_body(instruction: str, query: str, document: str) -> str:
    """Format the part of a reranker input that sits between the fixed prefix and suffix.

    Args:
        instruction: Instruction text.
        query: The query.
        document: One candidate document.

    Returns:
        ``f"<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {document}"``: the query
        half followed by the document half.

    Example:
        >>> format_rerank_body("Find it", "q", "d")
        '<Instruct>: Find it\\n<Query>: q\\n<Document>: d'
    """
    return format_rerank_query(instruction, query) + format_rerank_document(document)
