"""Drives a Nimbostack server with Debian's python3-cs (exoscale `cs`), as operators do.

Usage: cs_foundation.py ENDPOINT APIKEY SECRET METHOD
Prints one JSON object with what each call returned, for the Node test to check.
"""
import json
import sys

from cs import CloudStack, CloudStackApiException

endpoint, key, secret, method = sys.argv[1:5]
api = CloudStack(endpoint=endpoint, key=key, secret=secret, method=method, timeout=30, poll_interval=0.2)
out = {}

out["domains"] = api.listDomains(listall=True)
domain = api.createDomain(name="cs-" + method)["domain"]
account = api.createAccount(
    username="alice-" + method, password="pw with spaces & symbols ~*!'()", email="alice@example.com",
    firstname="Alice", lastname="Liddell", accounttype=0, domainid=domain["id"],
)["account"]
out["account"] = account
user = api.createUser(
    account=account["name"], domainid=domain["id"], username="bob-" + method, password="s3cret+plus",
    email="bob@example.com", firstname="Bob", lastname="Builder",
)["user"]
out["user"] = user
out["keys"] = api.registerUserKeys(id=user["id"])["userkeys"]
out["accounts"] = api.listAccounts(listall=True, fetch_list=True)
out["configurations"] = api.listConfigurations(name="default.page.size")
out["updated"] = api.updateConfiguration(name="session.timeout", value="900")["configuration"]
# createTags is async: cs polls queryAsyncJobResult itself and returns the job result.
out["tagged"] = api.createTags(resourcetype="Account", resourceids=[account["id"]], tags=[{"key": "env", "value": "dev test"}], fetch_result=True)
out["tags"] = api.listTags(resourcetype="Account", listall=True)
out["events"] = api.listEvents(listall=True, type="ACCOUNT.CREATE")
out["apis"] = [a["name"] for a in api.listApis()["api"]]
out["xml"] = api._request("listDomains", json=False)

# The new user's own keys work, and confine them to their account.
bob = CloudStack(endpoint=endpoint, key=out["keys"]["apikey"], secret=out["keys"]["secretkey"], method=method, timeout=30)
out["bob_accounts"] = bob.listAccounts(listall=True)

# A wrong secret gives 401.
wrong = CloudStack(endpoint=endpoint, key=key, secret="wrong", method=method, timeout=30)
try:
    wrong.listDomains()
    out["bad_signature"] = None
except CloudStackApiException as e:
    out["bad_signature"] = {"status": e.response.status_code, "error": e.error}

try:
    api.createAccount(username="x")
    out["missing"] = None
except CloudStackApiException as e:
    out["missing"] = {"status": e.response.status_code, "error": e.error}

print(json.dumps(out))
