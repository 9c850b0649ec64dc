import {
  AlertOutlined,
  ApartmentOutlined,
  AppstoreOutlined,
  CameraOutlined,
  CloudServerOutlined,
  DashboardOutlined,
  DatabaseOutlined,
  GlobalOutlined,
  LogoutOutlined,
  MoonOutlined,
  SettingOutlined,
  SunOutlined,
  TeamOutlined,
  ThunderboltOutlined,
} from '@ant-design/icons';
import {
  App as AntApp,
  Badge,
  Button,
  ConfigProvider,
  Drawer,
  Layout,
  Menu,
  Result,
  Space,
  Spin,
  Tooltip,
  theme,
} from 'antd';
import { lazy, Suspense, useCallback, useEffect, useMemo, useState } from 'react';
import {
  api,
  currentProject,
  type LoginInfo,
  logout,
  setCurrentProject,
  setUnauthorizedHandler,
} from './api.ts';
import { ProjectSwitcher } from './components/ProjectSwitcher.tsx';
import { TwoFactorButton } from './components/TwoFactor.tsx';
import { refreshGuiTheme, useGuiTheme } from './gui-theme.ts';
import { ActionsProvider, useActions } from './jobs.tsx';
import { Accounts } from './pages/Accounts.tsx';
import { AffinityGroups } from './pages/AffinityGroups.tsx';
import { Dashboard } from './pages/Dashboard.tsx';
import { DeployWizard } from './pages/DeployWizard.tsx';
import { Events } from './pages/Events.tsx';
import { Infrastructure } from './pages/Infrastructure.tsx';
import { InstanceDetail } from './pages/InstanceDetail.tsx';
import { Instances } from './pages/Instances.tsx';
import { JobsList } from './pages/Jobs.tsx';
import { Login } from './pages/Login.tsx';
import { NetworkDetail } from './pages/NetworkDetail.tsx';
import { Networks } from './pages/Networks.tsx';
import { Settings } from './pages/Settings.tsx';
import { Snapshots } from './pages/Snapshots.tsx';
import { Storage } from './pages/Storage.tsx';
import { VpcDetail } from './pages/VpcDetail.tsx';
import { ZoneWizard } from './pages/ZoneWizard.tsx';
import { navigate, usePath } from './router.tsx';
import { type Session, SessionContext, savedLogin, saveLogin, useSession } from './session.tsx';

type ThemeName = 'light' | 'dark';

/** The console tab needs no shell and may need no login (a token in its URL); noVNC loads with it only. */
const ConsolePage = lazy(() => import('./pages/Console.tsx'));

export function Root() {
  const { path, query } = usePath();
  const [themeName, setThemeName] = useState<ThemeName>(
    () => (localStorage.getItem('nimbostack.theme') as ThemeName | null) ?? 'light',
  );
  const toggleTheme = () => {
    const next = themeName === 'light' ? 'dark' : 'light';
    localStorage.setItem('nimbostack.theme', next);
    setThemeName(next);
  };
  // The provider's GUI theme (gui-theme.ts) colours both light and dark.
  const gui = useGuiTheme();
  return (
    <ConfigProvider
      theme={{
        algorithm: themeName === 'dark' ? theme.darkAlgorithm : theme.defaultAlgorithm,
        token: gui.tokens,
      }}
    >
      <AntApp>
        {path.startsWith('/console/') ? (
          <Suspense fallback={<Spin fullscreen />}>
            <ConsolePage vmId={path.split('/')[2]} token={query.get('token') ?? undefined} />
          </Suspense>
        ) : (
          <Authenticated themeName={themeName} toggleTheme={toggleTheme} />
        )}
      </AntApp>
    </ConfigProvider>
  );
}

function Authenticated(props: { themeName: ThemeName; toggleTheme(): void }) {
  const [info, setInfo] = useState<LoginInfo | undefined>(savedLogin);
  /** listApis: each command this user may call, with its parameters' descriptions. */
  const [apis, setApis] = useState<Map<string, Map<string, string>>>();
  const [expired, setExpired] = useState(false);

  const signOut = useCallback((sessionExpired: boolean) => {
    saveLogin(undefined);
    setInfo(undefined);
    setApis(undefined);
    setExpired(sessionExpired);
  }, []);

  useEffect(() => setUnauthorizedHandler(() => signOut(true)), [signOut]);

  // The GUI theme follows who is signed in: the account's, the domain's, else the host name's.
  useEffect(() => {
    if (!info) {
      void refreshGuiTheme();
      return;
    }
    // The login answer names the account, not its UUID: the user's own record has it.
    api<{ user?: { accountid?: string }[] }>('listUsers', { id: info.userid })
      .then((r) => refreshGuiTheme({ accountid: r.user?.[0]?.accountid, domainid: info.domainid }))
      .catch(() => refreshGuiTheme({ domainid: info.domainid }));
  }, [info]);

  useEffect(() => {
    if (!info) return;
    api<{ api?: { name: string; params?: { name: string; description?: string }[] }[] }>('listApis')
      .then((r) =>
        setApis(
          new Map(
            (r.api ?? []).map((a) => [
              a.name,
              new Map((a.params ?? []).map((p) => [p.name, p.description ?? ''])),
            ]),
          ),
        ),
      )
      .catch(() => signOut(true));
  }, [info, signOut]);

  const session: Session | undefined = useMemo(() => {
    if (!info || !apis) return undefined;
    const type = Number(info.type);
    return {
      info,
      apis: new Set(apis.keys()),
      can: (c: string) => apis.has(c),
      describe: (c: string, param: string) => apis.get(c)?.get(param) || undefined,
      isRootAdmin: type === 1,
      isAdmin: type === 1 || type === 2,
      logout: () => {
        void logout().then(() => signOut(false));
      },
    };
  }, [info, apis, signOut]);

  if (!info)
    return (
      <Login
        expired={expired}
        onLogin={(i) => {
          saveLogin(i);
          setExpired(false);
          setInfo(i);
        }}
      />
    );
  if (!session) return <Spin fullscreen tip="Loading" />;
  return (
    <SessionContext.Provider value={session}>
      <ActionsProvider>
        <Shell {...props} />
      </ActionsProvider>
    </SessionContext.Provider>
  );
}

interface MenuEntry {
  key: string;
  label: string;
  icon: React.ReactNode;
  needs: string;
}

const MENU: MenuEntry[] = [
  { key: '/', label: 'Dashboard', icon: <DashboardOutlined />, needs: 'listApis' },
  { key: '/instances', label: 'Instances', icon: <CloudServerOutlined />, needs: 'listVirtualMachines' },
  { key: '/networks', label: 'Networks', icon: <GlobalOutlined />, needs: 'listNetworks' },
  { key: '/storage', label: 'Storage & images', icon: <DatabaseOutlined />, needs: 'listTemplates' },
  { key: '/snapshots', label: 'Snapshots', icon: <CameraOutlined />, needs: 'listSnapshots' },
  {
    key: '/affinity-groups',
    label: 'Affinity groups',
    icon: <ApartmentOutlined />,
    needs: 'listAffinityGroups',
  },
  { key: '/infrastructure', label: 'Infrastructure', icon: <AppstoreOutlined />, needs: 'listZones' },
  { key: '/accounts', label: 'Accounts', icon: <TeamOutlined />, needs: 'listAccounts' },
  { key: '/events', label: 'Events & alerts', icon: <AlertOutlined />, needs: 'listEvents' },
  { key: '/jobs', label: 'Jobs', icon: <ThunderboltOutlined />, needs: 'queryAsyncJobResult' },
  { key: '/settings', label: 'Settings', icon: <SettingOutlined />, needs: 'listConfigurations' },
];

function Shell(props: { themeName: ThemeName; toggleTheme(): void }) {
  const session = useSession();
  const { jobs } = useActions();
  const { path } = usePath();
  const [jobsOpen, setJobsOpen] = useState(false);
  const [collapsed, setCollapsed] = useState(false);
  const [project, setProject] = useState(currentProject);
  const {
    token: { colorBgContainer },
  } = theme.useToken();
  // Infrastructure is for root admins; the user portal keeps instances, storage, events and jobs.
  const entries = MENU.filter(
    (m) =>
      session.can(m.needs) &&
      (m.key !== '/infrastructure' || session.isRootAdmin) &&
      (m.key !== '/storage' || session.can('listVolumes') || session.can('listTemplates')),
  );
  const top = `/${path.split('/')[1] ?? ''}`;
  const running = jobs.filter((j) => j.status === 'running').length;
  const gui = useGuiTheme();
  const navBackground = gui.variables['--gui-navigation-background-color'];

  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Layout.Sider
        className="app-sider"
        breakpoint="lg"
        collapsedWidth={0}
        collapsed={collapsed}
        onCollapse={setCollapsed}
        width={210}
        style={navBackground ? { background: navBackground } : undefined}
      >
        <div className="brand">
          {gui.logo && <img className="brand-logo" src={gui.logo} alt="" />}
          <span data-testid="brand-title">{gui.appTitle}</span>
        </div>
        <nav aria-label="Main">
          <Menu
            theme="dark"
            style={navBackground ? { background: navBackground } : undefined}
            mode="inline"
            selectedKeys={[top]}
            items={entries.map((m) => ({ key: m.key, icon: m.icon, label: m.label }))}
            onClick={(e) => {
              navigate(e.key);
              if (window.innerWidth < 992) setCollapsed(true);
            }}
          />
        </nav>
      </Layout.Sider>
      <Layout>
        <Layout.Header className="app-header" style={{ background: colorBgContainer, padding: '0 16px' }}>
          <span className="hide-on-phone" />
          <Space>
            <ProjectSwitcher
              value={project}
              onChange={(id) => {
                setCurrentProject(id);
                setProject(id);
              }}
            />
            <Tooltip title="Jobs">
              <Badge count={running} size="small">
                <Button aria-label="Jobs" icon={<ThunderboltOutlined />} onClick={() => setJobsOpen(true)} />
              </Badge>
            </Tooltip>
            <Tooltip title={props.themeName === 'light' ? 'Dark theme' : 'Light theme'}>
              <Button
                aria-label="Toggle theme"
                icon={props.themeName === 'light' ? <MoonOutlined /> : <SunOutlined />}
                onClick={props.toggleTheme}
              />
            </Tooltip>
            {session.can('setupUserTwoFactorAuthentication') && (
              <TwoFactorButton
                userid={session.info.userid}
                username={session.info.username}
                issuer={session.info.issuerfor2fa}
              />
            )}
            <span className="hide-on-phone" data-testid="whoami">
              {session.info.username} ({session.info.account})
            </span>
            <Button icon={<LogoutOutlined />} onClick={session.logout}>
              Log out
            </Button>
          </Space>
        </Layout.Header>
        <Layout.Content className="app-content">
          <main>
            {/* Drawn afresh when the project changes: its lists load again with the new projectid. */}
            <Page key={project ?? ''} path={path} />
          </main>
        </Layout.Content>
        {gui.footer && <Layout.Footer data-testid="gui-footer">{gui.footer}</Layout.Footer>}
      </Layout>
      <Drawer title="Jobs" open={jobsOpen} onClose={() => setJobsOpen(false)} size={480}>
        <JobsList />
      </Drawer>
    </Layout>
  );
}

function Page({ path }: { path: string }) {
  const parts = path.split('/').filter(Boolean);
  switch (parts[0]) {
    case undefined:
      return <Dashboard />;
    case 'instances':
      if (parts[1] === 'deploy') return <DeployWizard />;
      if (parts[1]) return <InstanceDetail id={parts[1]} />;
      return <Instances />;
    case 'infrastructure':
      if (parts[1] === 'zone-wizard') return <ZoneWizard />;
      return <Infrastructure />;
    case 'networks':
      if (parts[1] === 'vpcs' && parts[2]) return <VpcDetail id={parts[2]} />;
      if (parts[1]) return <NetworkDetail id={parts[1]} />;
      return <Networks />;
    case 'storage':
      return <Storage />;
    case 'snapshots':
      return <Snapshots />;
    case 'affinity-groups':
      return <AffinityGroups />;
    case 'accounts':
      return <Accounts />;
    case 'events':
      return <Events />;
    case 'jobs':
      return <JobsList />;
    case 'settings':
      return <Settings />;
    default:
      return (
        <Result
          status="404"
          title="Not found"
          extra={<Button onClick={() => navigate('/')}>Dashboard</Button>}
        />
      );
  }
}
