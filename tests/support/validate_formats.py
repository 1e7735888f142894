"""Validate gpu-doctor outputs with real validators; used by tests/formats.rs.

    validate_formats.py junit XSD FILE...    each FILE against the JUnit XSD (xmlschema)
    validate_formats.py sarif SCHEMA FILE... each FILE against the SARIF JSON schema (jsonschema,
                                             with format checks)

Prints every problem as FILE: message and exits 1 when there is one.
"""
import json
import sys


def junit(xsd, files):
    import xmlschema

    schema = xmlschema.XMLSchema(xsd)
    bad = 0
    for f in files:
        for err in schema.iter_errors(f):
            bad += 1
            print(f"{f}: {err.reason} at {err.path}")
    return bad


def sarif(schema_path, files):
    import jsonschema

    with open(schema_path, encoding="utf-8") as fh:
        schema = json.load(fh)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    bad = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            doc = json.load(fh)
        for err in validator.iter_errors(doc):
            bad += 1
            print(f"{f}: {err.message} at {list(err.absolute_path)}")
    return bad


def main():
    kind, schema, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    if not files:
        print("no files given")
        return 2
    bad = {"junit": junit, "sarif": sarif}[kind](schema, files)
    print(f"{kind}: {len(files)} file(s), {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
