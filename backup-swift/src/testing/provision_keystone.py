# Provisions a fresh Keystone for the backupapps tests: an object-store
# service with endpoints to the test Swift, a project, a user with the member
# role, and an application credential. Prints them as JSON.
import json, sys, urllib.request

keystone, swift_port, admin_pw, user_pw = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def call(method, path, body=None, token=None, want_token=False):
    req = urllib.request.Request(keystone + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as resp:
        data = resp.read()
        doc = json.loads(data) if data else {}
        return (resp.headers["X-Subject-Token"], doc) if want_token else doc

def token(user, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    return call("POST", "/auth/tokens", body, want_token=True)

admin, _ = token("admin", admin_pw, "admin")
service = call("POST", "/services", {"service": {"type": "object-store", "name": "swift"}}, admin)["service"]["id"]
for interface in ("public", "internal"):
    call("POST", "/endpoints", {"endpoint": {"service_id": service, "interface": interface, "region_id": "RegionOne",
         "url": "http://127.0.0.1:%s/v1/KEY_$(project_id)s" % swift_port}}, admin)
project = call("POST", "/projects", {"project": {"name": "backups", "domain_id": "default"}}, admin)["project"]["id"]
user = call("POST", "/users", {"user": {"name": "backupper", "domain_id": "default", "password": user_pw,
            "default_project_id": project}}, admin)["user"]["id"]
member = call("GET", "/roles?name=member", token=admin)["roles"][0]["id"]
call("PUT", "/projects/%s/users/%s/roles/%s" % (project, user, member), token=admin)
own, _ = token("backupper", user_pw, "backups")
cred = call("POST", "/users/%s/application_credentials" % user,
            {"application_credential": {"name": "backupapps"}}, own)["application_credential"]
print(json.dumps({"project_id": project, "app_cred_id": cred["id"], "app_cred_secret": cred["secret"]}))
