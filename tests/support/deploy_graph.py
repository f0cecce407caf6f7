#!/usr/bin/env python3
"""The deploy graph of a SAM template, as `sam deploy` hands it to CloudFormation.

Transforms the template with aws-sam-translator (the library `sam deploy` runs; pinned in
scripts/requirements-test.txt), offline: each function's CodeUri is replaced by an s3://
URI, as `sam package` does, and the managed-policy loader answers from nothing (the
template names no managed policy). Then checks what CloudFormation and API Gateway would
refuse or break on, none of which cfn-lint reliably reports:

- a dependency cycle between resources (Ref, Fn::GetAtt, Fn::Sub ${X} and ${X.Attr},
  DependsOn), references inside the HTTP API's generated OpenAPI body included, and both
  branches of Fn::If counted (a cycle under some parameter values is still a cycle);
- a Ref, Fn::GetAtt or Fn::Sub to a resource, parameter or attribute that does not exist,
  and a condition that does not exist;
- an HTTP API route, a Lambda authorizer or a WebSocket integration whose function
  API Gateway may not invoke (no AWS::Lambda::Permission for that function whose source
  ARN covers it), and a public function URL without both public permissions.

Usage: deploy_graph.py TEMPLATE. Prints one JSON object: "translator" (the library's
version), "findings" (one sentence each; empty when the graph is sound) and "template"
(the transformed template, for further checks such as IAM). A template the translator
refuses is one finding. Exit status 0 unless the tool itself cannot run.
"""

import fnmatch
import json
import os
import sys

# The translator needs a region (what `sam deploy` takes from the profile); any will do.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import samtranslator  # noqa: E402
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::NotificationARNs": "",
    "AWS::NoValue": "",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackId": "stack",
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
}

# Fn::GetAtt attributes of the resource types a transformed template of ours holds, from
# CloudFormation's resource reference. A type missing here is a finding, so the table
# grows with the template instead of letting an attribute pass unchecked.
ATTRIBUTES = {
    "AWS::ApiGatewayV2::Api": {"ApiEndpoint", "ApiId"},
    "AWS::ApiGatewayV2::Integration": {"IntegrationId"},
    "AWS::ApiGatewayV2::Route": {"RouteId"},
    "AWS::ApiGatewayV2::Stage": set(),
    "AWS::CloudWatch::Alarm": {"Arn"},
    "AWS::DynamoDB::Table": {"Arn", "StreamArn", "TableId"},
    "AWS::Events::Rule": {"Arn"},
    "AWS::IAM::Role": {"Arn", "RoleId"},
    "AWS::Lambda::EventInvokeConfig": set(),
    "AWS::Lambda::EventSourceMapping": {"EventSourceMappingArn", "Id"},
    "AWS::Lambda::Function": {
        "Arn",
        "SnapStartResponse",
        "SnapStartResponse.ApplyOn",
        "SnapStartResponse.OptimizationStatus",
    },
    "AWS::Lambda::Permission": set(),
    "AWS::Lambda::Url": {"FunctionArn", "FunctionUrl"},
    "AWS::SNS::Topic": {"TopicArn", "TopicName"},
    "AWS::SQS::Queue": {"Arn", "QueueName", "QueueUrl"},
}

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method"}


class OfflinePolicyLoader:
    """The managed-policy loader `transform` wants, without IAM: no names to resolve."""

    def load(self):
        return {}


def sub_names(text):
    """The ${...} names of an Fn::Sub string (not ${!Literal} escapes)."""
    names = []
    i = 0
    while True:
        start = text.find("${", i)
        if start < 0:
            return names
        end = text.find("}", start)
        if end < 0:
            return names
        name = text[start + 2 : end]
        if not name.startswith("!"):
            names.append(name)
        i = end + 1


def references(node, local=frozenset()):
    """Every reference in an intrinsic tree: (kind, target, attribute) with kind "ref",
    "getatt" or "condition". Names in `local` are Fn::Sub variables, not references."""
    out = []
    if isinstance(node, list):
        for item in node:
            out.extend(references(item, local))
    elif isinstance(node, dict):
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref" and isinstance(value, str):
                return [("ref", value, None)]
            if key == "Fn::GetAtt":
                if isinstance(value, str) and "." in value:
                    target, attr = value.split(".", 1)
                    return [("getatt", target, attr)]
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                    if isinstance(value[1], str):
                        return [("getatt", value[0], value[1])]
                    return [("getatt", value[0], None)] + references(value[1], local)
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                names = set(variables) if isinstance(variables, dict) else set()
                for name in sub_names(text if isinstance(text, str) else ""):
                    if name in names or name in local:
                        continue
                    if "." in name and not name.startswith("AWS::"):
                        target, attr = name.split(".", 1)
                        out.append(("getatt", target, attr))
                    else:
                        out.append(("ref", name, None))
                out.extend(references(variables, local))
                return out
            if key == "Fn::If" and isinstance(value, list) and value:
                out.append(("condition", value[0], None))
                return out + references(value[1:], local)
            if key == "Condition" and isinstance(value, str):
                # Inside Conditions (Fn::And and the like), a condition reference.
                out.append(("condition", value, None))
                return out
        for value in node.values():
            out.extend(references(value, local))
    return out


def check_references(template, findings):
    """Dangling references and unknown attributes; returns the resource graph."""
    resources = template.get("Resources", {})
    parameters = set(template.get("Parameters", {}))
    conditions = set(template.get("Conditions", {}))
    graph = {name: set() for name in resources}

    def check(owner, refs, edges):
        for kind, target, attr in refs:
            if kind == "condition":
                if target not in conditions:
                    findings.append(f"{owner} uses condition {target}, which is not defined")
                continue
            if kind == "ref":
                if target in PSEUDO_PARAMETERS or target in parameters:
                    continue
                if target in resources:
                    if edges is not None:
                        edges.add(target)
                    continue
                findings.append(f"{owner} refers to {target}, which is no resource, parameter or pseudo parameter")
                continue
            # getatt
            if target not in resources:
                findings.append(f"{owner} reads {target}.{attr}, but there is no resource {target}")
                continue
            if edges is not None:
                edges.add(target)
            kind_of = resources[target].get("Type", "")
            known = ATTRIBUTES.get(kind_of)
            if known is None:
                findings.append(f"{owner} reads {target}.{attr} of type {kind_of}, which this check's attribute table lacks")
            elif attr is not None and attr not in known:
                findings.append(f"{owner} reads {target}.{attr}, but {kind_of} has no attribute {attr} (it has {', '.join(sorted(known)) or 'none'})")

    for name, resource in resources.items():
        check(name, references(resource.get("Properties", {})), graph[name])
        depends = resource.get("DependsOn", [])
        for target in [depends] if isinstance(depends, str) else depends:
            if target in resources:
                graph[name].add(target)
            else:
                findings.append(f"{name} depends on {target}, which is no resource")
        if "Condition" in resource and resource["Condition"] not in conditions:
            findings.append(f"{name} has condition {resource['Condition']}, which is not defined")
    for name, output in template.get("Outputs", {}).items():
        check(f"output {name}", references(output), None)
    for name, condition in template.get("Conditions", {}).items():
        check(f"condition {name}", references(condition), None)
    return graph


def cycles(graph):
    """Each strongly connected component of more than one resource (or a resource that
    needs itself), as one cycle through it: what CloudFormation calls a circular
    dependency."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(root):
        # Iterative Tarjan, so a long chain cannot exhaust Python's recursion limit.
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    # One shortest cycle through each member, each distinct cycle once: HttpApi -> A ->
    # HttpApi and HttpApi -> B -> HttpApi are two mistakes even though they share HttpApi.
    out, seen = [], set()
    for component in sorted(found):
        for member in component:
            cycle = path_through(graph, component, member)
            edges = frozenset(zip(cycle, cycle[1:]))
            if edges not in seen:
                seen.add(edges)
                out.append(cycle)
    return out


def path_through(graph, component, start):
    """A shortest cycle from `start` back to itself within its component."""
    members = set(component)
    if start in graph[start]:
        return [start, start]
    previous = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return list(reversed(path)) + [start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return component + [start]


def render(node, variables=None):
    """A string for an ARN-like intrinsic, with resources by logical name and pseudo
    parameters by example values; None when it is not one."""
    variables = variables or {}
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (key, value), = node.items()
        if key == "Ref" and isinstance(value, str):
            return PSEUDO_PARAMETERS.get(value, value)
        if key == "Fn::GetAtt":
            parts = value.split(".", 1) if isinstance(value, str) else value
            return f"{parts[0]}.{parts[1]}"
        if key == "Fn::Sub":
            text, local = (value, {}) if isinstance(value, str) else (value[0], value[1])
            for name in sub_names(text):
                if name in local:
                    replacement = render(local[name])
                else:
                    replacement = PSEUDO_PARAMETERS.get(name, name)
                text = text.replace("${" + name + "}", replacement if replacement is not None else "?")
            return text
    return None


def functions_in(node, resources):
    """The Lambda functions an intrinsic (an integration or authorizer URI) points at."""
    names = set()
    for kind, target, _ in references(node):
        if kind in ("ref", "getatt") and resources.get(target, {}).get("Type") == "AWS::Lambda::Function":
            names.add(target)
    return names


def permissions_of(resources, function):
    """The AWS::Lambda::Permission resources that name `function`."""
    out = []
    for resource in resources.values():
        if resource.get("Type") != "AWS::Lambda::Permission":
            continue
        props = resource.get("Properties", {})
        if function in functions_in(props.get("FunctionName"), resources):
            out.append(props)
    return out


def api_gateway_may_invoke(resources, function, source):
    """Whether a permission lets API Gateway invoke `function` for the execute-api
    resource `source` (api/stage/method/path, api/authorizers/id, api/stage/routeKey)."""
    for props in permissions_of(resources, function):
        if props.get("Action") != "lambda:InvokeFunction":
            continue
        if props.get("Principal") != "apigateway.amazonaws.com":
            continue
        if "SourceArn" not in props:
            return True
        arn = render(props["SourceArn"])
        if arn is None:
            continue
        parts = arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "execute-api" and fnmatch.fnmatchcase(source, parts[5]):
            return True
    return False


def check_invocations(template, findings):
    """Routes, authorizers and integrations API Gateway may not invoke; public URLs
    without their permissions."""
    resources = template.get("Resources", {})
    for api_name, api in sorted(resources.items()):
        if api.get("Type") != "AWS::ApiGatewayV2::Api":
            continue
        body = api.get("Properties", {}).get("Body")
        if not isinstance(body, dict):
            continue
        for path, operations in sorted(body.get("paths", {}).items()):
            for method, operation in sorted(operations.items()):
                if method not in HTTP_METHODS or not isinstance(operation, dict):
                    continue
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                concrete = "/".join("x" if s.startswith("{") else s for s in path.split("/"))
                source = f"{api_name}/$default/{verb}{concrete}"
                uri = operation.get("x-amazon-apigateway-integration", {}).get("uri")
                for function in sorted(functions_in(uri, resources)):
                    if not api_gateway_may_invoke(resources, function, source):
                        findings.append(f"{api_name} route {verb} {path} integrates {function}, which API Gateway may not invoke (no permission covers {source})")
        schemes = body.get("components", {}).get("securitySchemes", {})
        for scheme, definition in sorted(schemes.items()):
            authorizer = definition.get("x-amazon-apigateway-authorizer")
            if not isinstance(authorizer, dict):
                continue
            source = f"{api_name}/authorizers/x"
            for function in sorted(functions_in(authorizer.get("authorizerUri"), resources)):
                if not api_gateway_may_invoke(resources, function, source):
                    findings.append(f"{api_name} authorizer {scheme} runs {function}, which API Gateway may not invoke (no permission covers {source}): every route behind it would answer 500")
    for name, integration in sorted(resources.items()):
        if integration.get("Type") != "AWS::ApiGatewayV2::Integration":
            continue
        props = integration.get("Properties", {})
        api = render(props.get("ApiId"))
        route_keys = [
            r.get("Properties", {}).get("RouteKey", "")
            for r in resources.values()
            if r.get("Type") == "AWS::ApiGatewayV2::Route"
            and name in {t for _, t, _ in references(r.get("Properties", {}).get("Target"))}
        ]
        for function in sorted(functions_in(props.get("IntegrationUri"), resources)):
            for key in route_keys or ["x"]:
                source = f"{api}/stage/{key}"
                if not api_gateway_may_invoke(resources, function, source):
                    findings.append(f"{name} integrates {function}, which API Gateway may not invoke (no permission covers {source})")
    for name, url in sorted(resources.items()):
        if url.get("Type") != "AWS::Lambda::Url":
            continue
        props = url.get("Properties", {})
        if props.get("AuthType") != "NONE":
            continue
        for function in sorted(functions_in(props.get("TargetFunctionArn"), resources)):
            granted = {
                p.get("Action")
                for p in permissions_of(resources, function)
                if p.get("Principal") == "*"
                and (p.get("FunctionUrlAuthType") == "NONE" or p.get("InvokedViaFunctionUrl") is True)
            }
            for action in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction"):
                if action not in granted:
                    findings.append(f"{name} is a public URL of {function}, which lacks the public {action} permission")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: deploy_graph.py TEMPLATE")
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://deploy-graph-check/health-lambda.zip"
    findings = []
    try:
        transformed = transform(template, {}, OfflinePolicyLoader())
    except InvalidDocumentException as e:
        reasons = "; ".join(str(cause) for cause in e.causes)
        findings.append(f"aws-sam-translator refuses the template: {reasons}")
        transformed = {}
    if transformed:
        graph = check_references(transformed, findings)
        for cycle in cycles(graph):
            findings.append("dependency cycle: " + " -> ".join(cycle))
        check_invocations(transformed, findings)
    json.dump(
        {"translator": samtranslator.__version__, "findings": findings, "template": transformed},
        sys.stdout,
        default=str,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
