"""python-agent's entrypoint: the handler pard serves as the "default" action."""


def handler(input):
    # A2A sends parameters as strings, /invocations as any JSON object: echo either as is.
    return {"handled_by": "entrypoint", "input": input}
