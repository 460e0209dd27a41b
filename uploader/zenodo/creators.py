"""Creator names as Zenodo reads them: "Family, Given".

Zenodo's deposit API splits a creator's `name` holding exactly one comma
into the family and given names (zenodo-rdm legacy/deserializers/metadata.py
PersonSchema.load_names); any other name (no comma, or several) becomes the
family name alone, so "Jane Doe" is cited as "Jane Doe" with no given name, and the
citation of a published DOI cannot be taken back. Used by every option that
names creators, before anything is created.
"""

from __future__ import annotations


def creator_name_problems(names: list[str], option: str = "--creators") -> list[str]:
    """One line per name Zenodo would misread (no comma, or nothing on one side of it); [] when all are right."""
    problems = []
    for name in names:
        family, comma, given = name.partition(",")
        if name.count(",") > 1:
            problems.append(f'{option} "{name}": Zenodo splits a creator only at a single comma ("Family, Given");'
                            " with several, the whole name becomes the family name in the citation")
        elif not comma:
            parts = name.split()
            hint = f'"{parts[-1]}, {" ".join(parts[:-1])}"' if len(parts) > 1 else '"Family, Given"'
            problems.append(f'{option} "{name}": Zenodo reads a creator as "Family, Given", and a name without a'
                            f' comma becomes the family name alone in the citation; write it as {hint}')
        elif not family.strip() or not given.strip():
            problems.append(f'{option} "{name}": both sides of the comma are needed ("Family, Given")')
    return problems
