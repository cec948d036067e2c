//! Authentication (bearer tokens) and RBAC authorization, as the real API server does
//! them: who is asking (`authenticate`), what the request is (`RequestInfo::of`, the
//! apiserver's RequestInfoFactory), and whether the ClusterRoles/Roles bound to the user
//! in the store allow it (`authorize`), with the 401/403 `Status` bodies it answers.
//!
//! The subset the project uses: rules with apiGroups, verbs, resources (`*`,
//! `resource/subresource`, `*/sub`, `resource/*`), resourceNames and nonResourceURLs;
//! ClusterRoleBindings, and RoleBindings to a Role or a ClusterRole; subjects of kind
//! User and Group. Aggregated ClusterRoles and ServiceAccount subjects are not modelled.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::store::{ApiError, Store};

/// A user that authenticates with a bearer token (`Options::auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The user name RBAC subjects of kind `User` match.
    pub name: String,
    /// The bearer token.
    pub token: String,
    /// Groups RBAC subjects of kind `Group` match (`system:authenticated` is implied).
    pub groups: Vec<String>,
}

/// The admin the default kubeconfig names in auth mode: in `system:masters`, which the
/// real API server never subjects to RBAC, so every test that does not ask for a
/// particular user keeps working.
pub const ADMIN_USER: &str = "fake-admin";
/// The admin's token (the token the default kubeconfig has always carried).
pub const ADMIN_TOKEN: &str = "fake-token";
const MASTERS: &str = "system:masters";
const AUTHENTICATED: &str = "system:authenticated";

/// Token users and revocations of a cluster in auth mode.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    pub users: Vec<TokenUser>,
    pub revoked: HashSet<String>,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl AuthState {
    /// The state for `users` plus the admin.
    pub fn new(users: Vec<TokenUser>) -> Self {
        let mut all = vec![TokenUser {
            name: ADMIN_USER.into(),
            token: ADMIN_TOKEN.into(),
            groups: vec![MASTERS.into()],
        }];
        all.extend(users);
        Self {
            users: all,
            revoked: HashSet::new(),
        }
    }

    /// The user of an `Authorization` header value, `None` for a missing, unknown or
    /// revoked token (the server answers 401 then).
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let u = self.users.iter().find(|u| u.token == token)?;
        if self.revoked.contains(&u.name) {
            return None;
        }
        let mut groups = u.groups.clone();
        groups.push(AUTHENTICATED.into());
        Some(User {
            name: u.name.clone(),
            groups,
        })
    }
}

/// The 401 body of the real API server.
pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// What a request asks for, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RequestInfo {
    /// False for non-resource paths (`/version`, `/api`, `/openapi/v2`…).
    pub resource_request: bool,
    pub path: String,
    pub verb: String,
    pub api_group: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl RequestInfo {
    /// Parses a request the way the apiserver's RequestInfoFactory does.
    pub fn of(method: &str, path: &str, watch: bool) -> Self {
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let non_resource = || RequestInfo {
            path: path.to_string(),
            verb: method.to_ascii_lowercase(),
            ..Default::default()
        };
        let (group, mut parts) = match segs.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest.to_vec()),
            ["apis", g, _version, rest @ ..] if !rest.is_empty() => (*g, rest.to_vec()),
            _ => return non_resource(),
        };
        let mut info = RequestInfo {
            resource_request: true,
            path: path.to_string(),
            api_group: group.to_string(),
            ..Default::default()
        };
        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            // `namespaces/NAME/status|finalize` are the namespace's own subresources.
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts = parts[2..].to_vec();
            }
        }
        info.resource = parts[0].to_string();
        if let Some(n) = parts.get(1) {
            info.name = (*n).to_string();
        }
        if let Some(s) = parts.get(2) {
            info.subresource = (*s).to_string();
        }
        info.verb = match method {
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if info.name.is_empty() => "deletecollection",
            "DELETE" => "delete",
            _ if watch => "watch",
            _ if info.name.is_empty() => "list",
            _ => "get",
        }
        .to_string();
        info
    }

    /// `resource` or `resource/subresource`.
    pub fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// `verb resource[/sub][.group]`, or `verb path` for non-resource requests.
    pub fn summary(&self) -> String {
        if !self.resource_request {
            return format!("{} {}", self.verb, self.path);
        }
        let mut r = self.full_resource();
        if !self.api_group.is_empty() {
            r = format!("{r}.{}", self.api_group);
        }
        format!("{} {r}", self.verb)
    }

    /// The same request with another verb (the extra `create` check of exec websockets).
    pub fn with_verb(&self, verb: &str) -> Self {
        RequestInfo {
            verb: verb.to_string(),
            ..self.clone()
        }
    }
}

/// Whether a request is a pod streaming connection that, entered through a websocket GET,
/// also needs `create`: since Kubernetes 1.35 (feature gate
/// AuthorizePodWebsocketUpgradeCreatePermission, beta and on by default) the API server
/// authorizes such upgrades for `get` and then for `create` on `pods/exec`, `pods/attach`
/// and `pods/portforward`, as SPDY's POST always was.
pub(crate) fn needs_create_too(info: &RequestInfo, upgrade: bool) -> bool {
    upgrade
        && info.verb == "get"
        && info.api_group.is_empty()
        && info.resource == "pods"
        && matches!(info.subresource.as_str(), "exec" | "attach" | "portforward")
}

/// The rules every authenticated user has through the bootstrap ClusterRoles
/// `system:discovery`, `system:public-info-viewer` and `system:basic-user`.
fn bootstrap_rules() -> Vec<Value> {
    vec![
        json!({"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*",
            "/version", "/version/", "/healthz", "/livez", "/readyz"], "verbs": ["get"]}),
        json!({"apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}),
    ]
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether one PolicyRule allows the request (rbac/validation `RuleAllows`).
pub(crate) fn rule_allows(rule: &Value, info: &RequestInfo) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| v == "*" || *v == info.verb) {
        return false;
    }
    if !info.resource_request {
        return strings(rule, "nonResourceURLs").iter().any(|u| {
            u == "*"
                || *u == info.path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| info.path.starts_with(prefix))
        });
    }
    let groups = strings(rule, "apiGroups");
    if !groups.iter().any(|g| g == "*" || *g == info.api_group) {
        return false;
    }
    let full = info.full_resource();
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        r == "*"
            || *r == full
            || (!info.subresource.is_empty()
                && (*r == format!("*/{}", info.subresource)
                    || *r == format!("{}/*", info.resource)))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || names.contains(&info.name)
}

fn subject_matches(subject: &Value, user: &User) -> bool {
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match subject.get("kind").and_then(Value::as_str) {
        Some("User") => name == user.name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        _ => false,
    }
}

fn objects(st: &Store, kind: &str, ns: Option<&str>) -> Vec<std::sync::Arc<Value>> {
    st.find_kind("rbac.authorization.k8s.io/v1", kind)
        .map(|t| st.all(t, ns))
        .unwrap_or_default()
}

/// The rules of the role a binding refers to (a Role only in the binding's namespace).
fn role_rules(st: &Store, binding: &Value, ns: &str) -> Vec<Value> {
    let kind = binding.pointer("/roleRef/kind").and_then(Value::as_str);
    let name = binding
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let role = match kind {
        Some("ClusterRole") => st
            .find_kind("rbac.authorization.k8s.io/v1", "ClusterRole")
            .and_then(|t| st.get(t, "", name)),
        Some("Role") if !ns.is_empty() => st
            .find_kind("rbac.authorization.k8s.io/v1", "Role")
            .and_then(|t| st.get(t, ns, name)),
        _ => None,
    };
    role.and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// Every rule that applies to `user` for requests in namespace `ns` ("" = cluster scope).
pub(crate) fn rules_for(st: &Store, user: &User, ns: &str) -> Vec<Value> {
    let mut rules = bootstrap_rules();
    let bound = |b: &Value| {
        b.get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, user)))
    };
    for b in objects(st, "ClusterRoleBinding", None) {
        if bound(&b) {
            rules.extend(role_rules(st, &b, ""));
        }
    }
    if !ns.is_empty() {
        for b in objects(st, "RoleBinding", Some(ns)) {
            if bound(&b) {
                rules.extend(role_rules(st, &b, ns));
            }
        }
    }
    rules
}

/// Whether RBAC (plus the `system:masters` superuser group) allows the request.
pub(crate) fn authorize(st: &Store, user: &User, info: &RequestInfo) -> bool {
    if user.groups.iter().any(|g| g == MASTERS) {
        return true;
    }
    rules_for(st, user, &info.namespace)
        .iter()
        .any(|r| rule_allows(r, info))
}

/// The API server's 403 for a denied request (responsewriters.Forbidden + NewForbidden).
pub(crate) fn forbidden(user: &User, info: &RequestInfo) -> ApiError {
    if !info.resource_request {
        return ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User {:?} cannot {} path {:?}",
                user.name, info.verb, info.path
            ),
        );
    }
    let scope = if info.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", info.namespace)
    };
    let why = format!(
        "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
        user.name,
        info.verb,
        info.full_resource(),
        info.api_group
    );
    // GroupResource.String(): `resource.group`, or `resource` for the core group.
    let gr = if info.api_group.is_empty() {
        info.resource.clone()
    } else {
        format!("{}.{}", info.resource, info.api_group)
    };
    let message = if info.name.is_empty() {
        format!("{gr} is forbidden: {why}")
    } else {
        format!("{gr} {:?} is forbidden: {why}", info.name)
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    e.details = Some(json!({"name": info.name, "group": info.api_group, "kind": info.resource}));
    e
}

/// Answers a SelfSubjectAccessReview (`authorization.k8s.io/v1`) for `user` with the
/// same evaluation as real requests.
pub(crate) fn self_subject_access_review(st: &Store, user: &User, body: &Value) -> Value {
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let info = if let Some(ra) = spec.get("resourceAttributes") {
        RequestInfo {
            resource_request: true,
            verb: text(ra, "verb"),
            api_group: text(ra, "group"),
            namespace: text(ra, "namespace"),
            resource: text(ra, "resource"),
            subresource: text(ra, "subresource"),
            name: text(ra, "name"),
            ..Default::default()
        }
    } else {
        let nra = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or_default();
        RequestInfo {
            path: text(&nra, "path"),
            verb: text(&nra, "verb"),
            ..Default::default()
        }
    };
    let allowed = authorize(st, user, &info);
    let mut status = json!({"allowed": allowed});
    if allowed && !user.groups.iter().any(|g| g == MASTERS) {
        status["reason"] = json!("RBAC: allowed by a binding of this user");
    }
    let mut out = body.clone();
    out["status"] = status;
    out["metadata"]["creationTimestamp"] = Value::Null;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(objects: &[Value]) -> Store {
        let (notify, _) = tokio::sync::watch::channel(0u64);
        let mut st = Store::new(notify, Default::default());
        for o in objects {
            st.apply(o.clone()).expect("apply");
        }
        st
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups
                .iter()
                .map(|g| (*g).to_string())
                .chain([AUTHENTICATED.to_string()])
                .collect(),
        }
    }

    fn cluster_role(name: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": rules})
    }

    fn binding(kind: &str, ns: Option<&str>, role_kind: &str, role: &str, subject: Value) -> Value {
        let mut meta = json!({"name": format!("{role}-binding")});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [subject]})
    }

    #[test]
    fn request_info_maps_methods_and_paths_to_verbs_like_the_api_server() {
        let i = RequestInfo::of("GET", "/api/v1/namespaces/astronomer/secrets", false);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("list", "astronomer", "secrets")
        );
        let i = RequestInfo::of("GET", "/api/v1/namespaces/astronomer/secrets", true);
        assert_eq!(i.verb, "watch");
        let i = RequestInfo::of("GET", "/api/v1/namespaces/astronomer", false);
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.namespace.as_str()
            ),
            ("get", "namespaces", "astronomer", "astronomer")
        );
        let i = RequestInfo::of("GET", "/api/v1/namespaces", false);
        assert_eq!((i.verb.as_str(), i.namespace.as_str()), ("list", ""));
        let i = RequestInfo::of(
            "DELETE",
            "/apis/velero.io/v1/namespaces/velero/backups",
            false,
        );
        assert_eq!(i.verb, "deletecollection");
        let i = RequestInfo::of("POST", "/api/v1/namespaces/a/pods/p/exec", false);
        assert_eq!(
            (i.verb.as_str(), i.full_resource().as_str(), i.name.as_str()),
            ("create", "pods/exec", "p")
        );
        assert!(needs_create_too(
            &RequestInfo::of("GET", "/api/v1/namespaces/a/pods/p/exec", false),
            true
        ));
        assert!(!needs_create_too(
            &RequestInfo::of("GET", "/api/v1/namespaces/a/pods/p/log", false),
            true
        ));
        let i = RequestInfo::of(
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            false,
        );
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.full_resource().as_str()
            ),
            ("patch", "apps", "deployments/scale")
        );
        let i = RequestInfo::of("PUT", "/api/v1/namespaces/a/finalize", false);
        assert_eq!(
            (i.verb.as_str(), i.full_resource().as_str()),
            ("update", "namespaces/finalize")
        );
        for p in [
            "/version",
            "/api",
            "/apis",
            "/apis/velero.io/v1",
            "/openapi/v2",
        ] {
            assert!(!RequestInfo::of("GET", p, false).resource_request, "{p}");
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let get = RequestInfo::of("GET", "/api/v1/namespaces/a/secrets/s1", false);
        let rule = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]});
        assert!(rule_allows(&rule, &get));
        assert!(!rule_allows(&rule, &get.with_verb("delete")));
        let star = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(&star, &get.with_verb("delete")));
        let other_group =
            json!({"apiGroups": ["apps"], "resources": ["secrets"], "verbs": ["get"]});
        assert!(!rule_allows(&other_group, &get));
        let named = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s2"]});
        assert!(!rule_allows(&named, &get));
        let named = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s1"]});
        assert!(rule_allows(&named, &get));

        let exec = RequestInfo::of("POST", "/api/v1/namespaces/a/pods/p/exec", false);
        let pods = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]});
        assert!(!rule_allows(&pods, &exec), "pods does not grant pods/exec");
        for r in ["pods/exec", "pods/*", "*/exec", "*"] {
            let rule = json!({"apiGroups": [""], "resources": [r], "verbs": ["create"]});
            assert!(rule_allows(&rule, &exec), "{r}");
        }
        let urls = json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]});
        assert!(rule_allows(
            &urls,
            &RequestInfo::of("GET", "/apis/velero.io/v1", false)
        ));
        assert!(!rule_allows(
            &urls,
            &RequestInfo::of("GET", "/version", false)
        ));
    }

    #[test]
    fn bindings_grant_by_user_group_and_namespace() {
        let st = store_with(&[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}),
            cluster_role(
                "secret-reader",
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]),
            ),
            cluster_role(
                "pod-maker",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]),
            ),
            binding(
                "ClusterRoleBinding",
                None,
                "ClusterRole",
                "secret-reader",
                json!({"kind": "User", "name": "alice"}),
            ),
            binding(
                "RoleBinding",
                Some("a"),
                "ClusterRole",
                "pod-maker",
                json!({"kind": "Group", "name": "oncall"}),
            ),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "cm", "namespace": "b"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            binding(
                "RoleBinding",
                Some("b"),
                "Role",
                "cm",
                json!({"kind": "User", "name": "bob"}),
            ),
        ]);
        let alice = user("alice", &[]);
        let bob = user("bob", &["oncall"]);
        let secrets = RequestInfo::of("GET", "/api/v1/namespaces/a/secrets/x", false);
        assert!(authorize(&st, &alice, &secrets));
        assert!(!authorize(&st, &bob, &secrets));
        let all_secrets = RequestInfo::of("GET", "/api/v1/secrets", false);
        assert!(authorize(&st, &alice, &all_secrets), "cluster-wide list");
        let pod_in_a = RequestInfo::of("POST", "/api/v1/namespaces/a/pods", false);
        let pod_in_b = RequestInfo::of("POST", "/api/v1/namespaces/b/pods", false);
        assert!(
            authorize(&st, &bob, &pod_in_a),
            "group through a RoleBinding"
        );
        assert!(
            !authorize(&st, &bob, &pod_in_b),
            "only in the binding's namespace"
        );
        assert!(!authorize(&st, &alice, &pod_in_a));
        let cm_b = RequestInfo::of("GET", "/api/v1/namespaces/b/configmaps/c", false);
        let cm_a = RequestInfo::of("GET", "/api/v1/namespaces/a/configmaps/c", false);
        assert!(authorize(&st, &bob, &cm_b));
        assert!(!authorize(&st, &bob, &cm_a));
        // Discovery and self-reviews for everyone authenticated; superusers for all.
        let nobody = user("nobody", &[]);
        assert!(authorize(
            &st,
            &nobody,
            &RequestInfo::of("GET", "/apis", false)
        ));
        assert!(authorize(
            &st,
            &nobody,
            &RequestInfo::of(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                false
            )
        ));
        assert!(!authorize(&st, &nobody, &secrets));
        assert!(authorize(&st, &user("root", &[MASTERS]), &secrets));
    }

    #[test]
    fn forbidden_messages_read_like_the_api_servers() {
        let u = user("alice", &[]);
        let e = forbidden(
            &u,
            &RequestInfo::of("GET", "/api/v1/namespaces/astronomer/secrets/s", false),
        );
        assert_eq!(
            e.message,
            r#"secrets "s" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "astronomer""#
        );
        let st = e.status();
        assert_eq!(st["reason"], "Forbidden");
        assert_eq!(st["code"], 403);
        assert_eq!(
            st["details"],
            json!({"name": "s", "group": "", "kind": "secrets"})
        );
        let e = forbidden(&u, &RequestInfo::of("GET", "/api/v1/namespaces", false));
        assert_eq!(
            e.message,
            r#"namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope"#
        );
        let e = forbidden(
            &u,
            &RequestInfo::of(
                "POST",
                "/apis/velero.io/v1/namespaces/velero/restores",
                false,
            ),
        );
        assert_eq!(
            e.message,
            r#"restores.velero.io is forbidden: User "alice" cannot create resource "restores" in API group "velero.io" in the namespace "velero""#
        );
        let e = forbidden(
            &u,
            &RequestInfo::of("GET", "/api/v1/namespaces/a/pods/p/exec", false).with_verb("create"),
        );
        assert_eq!(
            e.message,
            r#"pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "a""#
        );
        let e = forbidden(&u, &RequestInfo::of("GET", "/metrics", false));
        assert_eq!(
            e.message,
            r#"forbidden: User "alice" cannot get path "/metrics""#
        );
    }

    #[test]
    fn tokens_authenticate_until_revoked() {
        let mut a = AuthState::new(vec![TokenUser {
            name: "alice".into(),
            token: "t-alice".into(),
            groups: vec!["oncall".into()],
        }]);
        let u = a.authenticate(Some("Bearer t-alice")).expect("alice");
        assert_eq!(u.name, "alice");
        assert!(u.groups.contains(&"oncall".to_string()));
        assert!(u.groups.contains(&AUTHENTICATED.to_string()));
        assert!(a.authenticate(Some("Bearer nope")).is_none());
        assert!(a.authenticate(None).is_none());
        assert!(a.authenticate(Some("Basic t-alice")).is_none());
        assert_eq!(
            a.authenticate(Some("Bearer fake-token")).map(|u| u.name),
            Some(ADMIN_USER.to_string())
        );
        a.revoked.insert("alice".into());
        assert!(a.authenticate(Some("Bearer t-alice")).is_none());
    }

    #[test]
    fn access_reviews_use_the_same_evaluation() {
        let st = store_with(&[
            cluster_role(
                "r",
                json!([{"apiGroups": ["velero.io"], "resources": ["restores"], "verbs": ["create"]}]),
            ),
            binding(
                "ClusterRoleBinding",
                None,
                "ClusterRole",
                "r",
                json!({"kind": "User", "name": "alice"}),
            ),
        ]);
        let review = |verb: &str| {
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": verb, "group": "velero.io",
                    "resource": "restores", "namespace": "velero"}}})
        };
        let u = user("alice", &[]);
        assert_eq!(
            self_subject_access_review(&st, &u, &review("create"))["status"]["allowed"],
            true
        );
        assert_eq!(
            self_subject_access_review(&st, &u, &review("delete"))["status"]["allowed"],
            false
        );
    }
}
