"""Projects through Debian's python3-cs, as a team lead and a teammate would use them.

Usage: cs_projects.py ENDPOINT LEAD_KEY LEAD_SECRET MATE_KEY MATE_SECRET MATE_ACCOUNT
Prints one JSON object with what each call returned, for the Node test to check.
"""
import json
import sys

from cs import CloudStack, CloudStackApiException

endpoint, key, secret, mate_key, mate_secret, mate_account = sys.argv[1:7]
lead = CloudStack(endpoint=endpoint, key=key, secret=secret, timeout=30, poll_interval=0.2)
mate = CloudStack(endpoint=endpoint, key=mate_key, secret=mate_secret, timeout=30, poll_interval=0.2)
out = {}


def code(call):
    try:
        call()
        return None
    except CloudStackApiException as e:
        return e.error.get("errorcode")


project = lead.createProject(name="cs-team", displaytext="cs team", fetch_result=True)["project"]
out["created"] = {k: project[k] for k in ("name", "displaytext", "state", "vmlimit")}
out["owner"] = [o["account"] for o in project["owner"]]
# A key pair in the project: the project owns it, its members see it with projectid.
key_pair = lead.createSSHKeyPair(name="team-key", projectid=project["id"])["keypair"]
out["key_project"] = key_pair.get("projectid") == project["id"] and "account" not in key_pair
out["mate_before"] = code(lambda: mate.listSSHKeyPairs(projectid=project["id"]))
lead.addAccountToProject(projectid=project["id"], account=mate_account, fetch_result=True)
out["members"] = sorted(m["account"] for m in lead.listProjectAccounts(projectid=project["id"])["projectaccount"])
out["mate_keys"] = [k["name"] for k in mate.listSSHKeyPairs(projectid=project["id"])["sshkeypair"]]
out["mate_all_projects"] = [k["name"] for k in mate.listSSHKeyPairs(projectid="-1")["sshkeypair"]]
out["mate_own"] = mate.listSSHKeyPairs().get("count", 0)
out["mate_projects"] = [p["name"] for p in mate.listProjects()["project"]]
out["suspended"] = lead.suspendProject(id=project["id"], fetch_result=True)["project"]["state"]
out["add_suspended"] = code(lambda: mate.createSSHKeyPair(name="late", projectid=project["id"]))
out["activated"] = lead.activateProject(id=project["id"], fetch_result=True)["project"]["state"]
out["mate_delete"] = code(lambda: mate.deleteProject(id=project["id"], fetch_result=True))
out["deleted"] = lead.deleteProject(id=project["id"], fetch_result=True).get("success")
out["left"] = lead.listProjects().get("count", 0)
print(json.dumps(out))
