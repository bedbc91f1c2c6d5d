// Decree's own ESLint rules.
//
// no-role-context-writes: a role's context belongs to its machine. Outside the role packages
// (packages/<role>/src), code may read `actor.getSnapshot().context` (status, metrics) but never
// assign to it, delete from it or call a mutating method on it: state changes go in as events.
const ROLE_SRC = /packages\/(acceptor|proposer|learner|elector|snapshotter|config-manager)\/src\//;
const MUTATORS = new Set(['set', 'delete', 'clear', 'push', 'pop', 'shift', 'unshift', 'splice', 'add', 'sort']);

/** Whether `node` is (a member chain rooted at) `<x>.getSnapshot().context` or a name bound to one. */
function fromContext(node, bound) {
  let n = node;
  while (n) {
    if (n.type === 'MemberExpression') {
      if (
        !n.computed &&
        n.property.name === 'context' &&
        n.object.type === 'CallExpression' &&
        n.object.callee.type === 'MemberExpression' &&
        n.object.callee.property.name === 'getSnapshot'
      )
        return true;
      n = n.object;
    } else if (n.type === 'Identifier') return bound.has(n.name);
    else if (n.type === 'TSNonNullExpression' || n.type === 'TSAsExpression') n = n.expression;
    else return false;
  }
  return false;
}

const noRoleContextWrites = {
  meta: {
    type: 'problem',
    docs: { description: "code outside a role's machine never changes that role's context" },
    messages: { write: "{{what}} a role's context from outside its machine: send the role an event instead" },
    schema: [],
  },
  create(context) {
    if (ROLE_SRC.test(context.filename.replaceAll('\\', '/'))) return {};
    const bound = new Set();
    const report = (node, what) => context.report({ node, messageId: 'write', data: { what } });
    return {
      VariableDeclarator(node) {
        if (node.init && node.id.type === 'Identifier' && fromContext(node.init, bound)) bound.add(node.id.name);
      },
      AssignmentExpression(node) {
        if (node.left.type === 'MemberExpression' && fromContext(node.left.object, bound)) report(node, 'assigns to');
      },
      UpdateExpression(node) {
        if (node.argument.type === 'MemberExpression' && fromContext(node.argument.object, bound))
          report(node, 'updates');
      },
      UnaryExpression(node) {
        if (
          node.operator === 'delete' &&
          node.argument.type === 'MemberExpression' &&
          fromContext(node.argument.object, bound)
        )
          report(node, 'deletes from');
      },
      CallExpression(node) {
        const c = node.callee;
        if (
          c.type === 'MemberExpression' &&
          !c.computed &&
          MUTATORS.has(c.property.name) &&
          fromContext(c.object, bound)
        )
          report(node, 'mutates');
      },
    };
  },
};

export default { rules: { 'no-role-context-writes': noRoleContextWrites } };
