import { createRoot } from 'react-dom/client';
import { Root } from './App.tsx';
import './styles.css';

createRoot(document.getElementById('root')!).render(<Root />);
